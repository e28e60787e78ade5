//! Who may do what: the vault's one permission table.
//!
//! Every operator — command line or web — has exactly one [`Role`]. Every
//! [`Session`](crate::Session) operation needs one [`Permission`], and
//! [`Role::permits`] decides it from [`TABLE`], here and nowhere else: the
//! command line, the web console and the REST API ask the same table
//! through the same session, so a helpdesk operator's command line can do
//! exactly what their console account can, no more. An API token narrows
//! its account's role further to the token's scopes.
//!
//! The role itself is a signed column of the operator's row
//! ([`crate::signed`]): someone who can write the database but holds no
//! vault key cannot give an operator a role. This module is data only; a
//! session applies it (its `Principal`).

use std::fmt;

use serde::Serialize;

/// What an operation needs. API token scopes are these names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Permission {
    /// The toolset: codes, conversions, seeds, QR codes of secrets the user types.
    Toolset,
    /// Users, devices, credentials and their states (no secrets).
    InventoryRead,
    /// Reveal a helpdesk code (with verification and ticket).
    HelpdeskCode,
    /// Find the token that shows a code.
    Identify,
    /// Confirm a delivery by a code read off the token.
    Deliver,
    /// Make a one-time self-service link with which the user confirms
    /// their own delivery (and mail it to them).
    DeliveryLink,
    /// Add tokens, change lifecycle states, assign, import, purge, burn.
    InventoryWrite,
    /// Open secrets: export seed files, burn devices, push to Entra.
    Export,
    /// Read and verify the audit log.
    AuditRead,
    /// Operators, web accounts, roles, settings, rekey, copies of the vault.
    Admin,
    /// The console's operational metrics (`GET /metrics`): request counts,
    /// latencies, helpdesk grants and refusals, sign-ins — counts and
    /// route templates only, never a name, serial or code.
    Metrics,
    /// One's own password, API tokens and logout (sessions only: never a
    /// token scope).
    Account,
    /// Set an HOTP token's counter outright (`token set-counter`): moving
    /// it back makes used codes valid again. Re-synchronising by two codes
    /// read off the token is [`Permission::Deliver`].
    Counter,
    /// "When was this code valid?" over a past range (`oathdesk forensic`).
    Forensic,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::Toolset,
        Permission::InventoryRead,
        Permission::HelpdeskCode,
        Permission::Identify,
        Permission::Deliver,
        Permission::DeliveryLink,
        Permission::InventoryWrite,
        Permission::Export,
        Permission::AuditRead,
        Permission::Admin,
        Permission::Metrics,
        Permission::Account,
        Permission::Counter,
        Permission::Forensic,
    ];

    /// The scope name.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Toolset => "toolset",
            Permission::InventoryRead => "inventory.read",
            Permission::HelpdeskCode => "helpdesk.code",
            Permission::Identify => "identify",
            Permission::Deliver => "deliver",
            Permission::DeliveryLink => "delivery.link",
            Permission::InventoryWrite => "inventory.write",
            Permission::Export => "export",
            Permission::AuditRead => "audit.read",
            Permission::Admin => "admin",
            Permission::Metrics => "metrics",
            Permission::Account => "account",
            Permission::Counter => "hotp.counter",
            Permission::Forensic => "forensic",
        }
    }

    /// What it allows, for refusals ("the helpdesk role may not export secrets").
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Toolset => "use the toolset",
            Permission::InventoryRead => "read the inventory",
            Permission::HelpdeskCode => "reveal helpdesk codes",
            Permission::Identify => "identify tokens by their codes",
            Permission::Deliver => "confirm deliveries",
            Permission::DeliveryLink => "send users self-service delivery links",
            Permission::InventoryWrite => "change the inventory",
            Permission::Export => "export secrets",
            Permission::AuditRead => "read the audit log",
            Permission::Admin => "manage accounts, operators and settings",
            Permission::Metrics => "read the console's metrics",
            Permission::Account => "manage their own account",
            Permission::Counter => "set HOTP counters",
            Permission::Forensic => "search when a code was valid",
        }
    }

    /// A token scope by name; `account` is not one.
    pub fn scope(name: &str) -> Option<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == name && *p != Permission::Account)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operator's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything; trusted with everything.
    Admin,
    /// Reads the inventory, reveals codes, identifies tokens, confirms deliveries.
    Helpdesk,
    /// Brings tokens in, burns them and moves them through their life;
    /// exports seed files.
    Provisioner,
    /// Reads the inventory and the audit log; changes nothing.
    Auditor,
}

/// The policy, as data: each permission and the roles that have it.
pub const TABLE: [(Permission, &[Role]); 14] = {
    use Role::*;
    [
        (
            Permission::Toolset,
            &[Admin, Helpdesk, Provisioner, Auditor],
        ),
        (
            Permission::InventoryRead,
            &[Admin, Helpdesk, Provisioner, Auditor],
        ),
        (Permission::HelpdeskCode, &[Admin, Helpdesk]),
        (Permission::Identify, &[Admin, Helpdesk, Provisioner]),
        (Permission::Deliver, &[Admin, Helpdesk, Provisioner]),
        // Who may confirm a delivery may let the user confirm it.
        (Permission::DeliveryLink, &[Admin, Helpdesk, Provisioner]),
        (Permission::InventoryWrite, &[Admin, Provisioner]),
        (Permission::Export, &[Admin, Provisioner]),
        (Permission::AuditRead, &[Admin, Auditor]),
        (Permission::Admin, &[Admin]),
        // Admins run the console; auditors watch it — how many codes were
        // granted or refused and why is oversight, like the audit log. The
        // helpdesk and provisioners have no use for it, and a scrape token
        // made by them would widen who sees the activity of the whole desk.
        (Permission::Metrics, &[Admin, Auditor]),
        (
            Permission::Account,
            &[Admin, Helpdesk, Provisioner, Auditor],
        ),
        (Permission::Counter, &[Admin]),
        // Investigations belong to those who already read the audit log.
        // Never the helpdesk: a code they could test against "now" would
        // be a code oracle beside the rate-limited helpdesk code (and the
        // session refuses ranges that reach the present anyway).
        (Permission::Forensic, &[Admin, Auditor]),
    ]
};

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Helpdesk,
        Role::Provisioner,
        Role::Auditor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Provisioner => "provisioner",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether the role has `permission`, by [`TABLE`].
    pub fn permits(self, permission: Permission) -> bool {
        TABLE
            .iter()
            .any(|(p, roles)| *p == permission && roles.contains(&self))
    }

    /// Every permission of the role.
    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.permits(*p))
            .collect()
    }

    /// Whether operators of this role may hold a key slot that opens the
    /// vault offline. Helpdesk and auditor operators work through a
    /// console that holds the key (threat model, promise 2).
    pub fn may_hold_key(self) -> bool {
        matches!(self, Role::Admin | Role::Provisioner)
    }

    /// Whether an OpenID Connect sign-in may act in this role. Only roles
    /// that hold no key: the provider proves who someone is, never that
    /// they may open the vault, so admins and provisioners still unseal
    /// and unlock with their own key.
    pub fn may_sign_in_with_oidc(self) -> bool {
        !self.may_hold_key()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_is_in_the_table_once() {
        for permission in Permission::ALL {
            assert_eq!(
                TABLE.iter().filter(|(p, _)| *p == permission).count(),
                1,
                "{permission}"
            );
        }
    }

    #[test]
    fn the_role_table() {
        assert_eq!(Role::Admin.permissions().len(), Permission::ALL.len());
        assert!(Role::Helpdesk.permits(Permission::HelpdeskCode));
        assert!(!Role::Helpdesk.permits(Permission::InventoryWrite));
        assert!(!Role::Helpdesk.permits(Permission::Export));
        assert!(!Role::Helpdesk.permits(Permission::AuditRead));
        assert!(!Role::Helpdesk.permits(Permission::Admin));
        assert!(!Role::Provisioner.permits(Permission::HelpdeskCode));
        assert!(Role::Provisioner.permits(Permission::Export));
        assert!(!Role::Auditor.permits(Permission::Deliver));
        assert!(Role::Auditor.permits(Permission::AuditRead));
        assert!(Role::Auditor.permits(Permission::Metrics));
        assert!(!Role::Helpdesk.permits(Permission::Metrics));
        assert!(!Role::Provisioner.permits(Permission::Metrics));
        // "When was this code valid?" is never the helpdesk's.
        assert!(Role::Auditor.permits(Permission::Forensic));
        assert!(!Role::Helpdesk.permits(Permission::Forensic));
        assert!(!Role::Provisioner.permits(Permission::Forensic));
        for role in Role::ALL {
            assert!(role.permits(Permission::Toolset) && role.permits(Permission::Account));
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert!(Role::Helpdesk.may_sign_in_with_oidc() && Role::Auditor.may_sign_in_with_oidc());
        assert!(!Role::Admin.may_sign_in_with_oidc());
        assert!(!Role::Provisioner.may_sign_in_with_oidc());
        assert_eq!(Permission::scope("account"), None);
        assert_eq!(
            Permission::scope("helpdesk.code"),
            Some(Permission::HelpdeskCode)
        );
        assert_eq!(Permission::scope("metrics"), Some(Permission::Metrics));
        assert!(!Role::Provisioner.permits(Permission::Counter));
        assert!(!Role::Helpdesk.permits(Permission::Counter));
    }
}
