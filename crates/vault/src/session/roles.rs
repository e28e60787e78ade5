//! A session's principal: the operator's role, narrowed for an API token
//! to its scopes, checked against [`crate::policy::TABLE`].

use std::str::FromStr;

use crate::error::Error;
use crate::policy::{Permission, Role};

impl FromStr for Role {
    type Err = Error;

    fn from_str(text: &str) -> Result<Role, Error> {
        Role::parse(text.trim()).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            Error::Invalid(format!(
                "unknown role '{}': use one of {}",
                text.trim(),
                names.join(", ")
            ))
        })
    }
}

/// Who a session acts as, and what it may do: the operator's role, and for
/// an API token the scopes it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// `Some` for an API token: only these permissions (within the role).
    pub scopes: Option<Vec<Permission>>,
    /// The account's password was set by an admin and is not changed yet:
    /// the session (or an API token of the account) may do nothing but what
    /// changing it needs — see [`Principal::check_during_password_change`].
    pub password_change_pending: bool,
}

impl Principal {
    /// Whether this principal has `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        !self.password_change_pending && self.allowed(permission)
    }

    /// The role and scopes alone, whatever the password's state.
    fn allowed(&self, permission: Permission) -> bool {
        self.role.permits(permission)
            && self
                .scopes
                .as_ref()
                .is_none_or(|scopes| scopes.contains(&permission))
    }

    /// The refusal of `permission`, if refused: the words every front-end shows.
    /// While a password change is pending everything is refused with
    /// [`Error::PasswordChangeRequired`].
    pub fn check(&self, permission: Permission) -> Result<(), Error> {
        if self.password_change_pending {
            return Err(Error::PasswordChangeRequired);
        }
        self.check_during_password_change(permission)
    }

    /// The check of the few operations that changing one's password needs
    /// (reading one's own account, setting one's own password, signing out):
    /// the role and scopes, and nothing else. Only a browser session gets
    /// this far: an API token has no `account` scope.
    pub fn check_during_password_change(&self, permission: Permission) -> Result<(), Error> {
        if !self.role.permits(permission) {
            return Err(Error::Forbidden {
                permission,
                role: self.role,
                token: false,
            });
        }
        if !self.allowed(permission) {
            return Err(Error::Forbidden {
                permission,
                role: self.role,
                token: true,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_read_by_its_name() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_token_is_its_role_narrowed_to_its_scopes() {
        let token = Principal {
            role: Role::Helpdesk,
            scopes: Some(vec![Permission::InventoryRead, Permission::Export]),
            password_change_pending: false,
        };
        assert!(token.may(Permission::InventoryRead));
        assert!(!token.may(Permission::HelpdeskCode), "not in its scopes");
        assert!(!token.may(Permission::Export), "not in its role");
        assert!(matches!(
            token.check(Permission::Export),
            Err(Error::Forbidden { token: false, .. })
        ));
        assert!(matches!(
            token.check(Permission::HelpdeskCode),
            Err(Error::Forbidden { token: true, .. })
        ));
    }

    #[test]
    fn a_pending_password_change_refuses_all_but_the_change() {
        for scopes in [None, Some(vec![Permission::InventoryRead])] {
            let pending = Principal {
                role: Role::Admin,
                scopes,
                password_change_pending: true,
            };
            for permission in Permission::ALL {
                assert!(!pending.may(permission), "{permission}");
                assert!(matches!(
                    pending.check(permission),
                    Err(Error::PasswordChangeRequired)
                ));
            }
        }
        let session = Principal {
            role: Role::Helpdesk,
            scopes: None,
            password_change_pending: true,
        };
        assert!(
            session
                .check_during_password_change(Permission::Account)
                .is_ok()
        );
        let token = Principal {
            scopes: Some(vec![Permission::InventoryRead]),
            ..session
        };
        assert!(
            token
                .check_during_password_change(Permission::Account)
                .is_err()
        );
    }
}
