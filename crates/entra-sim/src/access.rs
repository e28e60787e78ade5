//! Who may do what: application permissions for app tokens, Entra roles
//! for signed-in admins (Microsoft's "least privileged role" tables).

use crate::server::Reply;
use crate::signin::Principal;
use crate::state::State;
use crate::{permissions, roles};

/// The Graph operations, for permission checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    ReadDevices,
    WriteDevices,
    ReadUsers,
    ReadMethods,
    WriteMethods,
    ReadPolicy,
    WritePolicy,
    SendMail,
}

impl Op {
    fn permissions(self) -> &'static [&'static str] {
        use permissions::*;
        match self {
            Op::ReadDevices | Op::ReadPolicy => &[POLICY_READ, POLICY_WRITE],
            Op::WriteDevices | Op::WritePolicy => &[POLICY_WRITE],
            Op::ReadUsers => &[USERS_READ, "User.ReadWrite.All", "Directory.Read.All"],
            Op::ReadMethods => &[METHODS_READ, METHODS_WRITE],
            Op::WriteMethods => &[METHODS_WRITE],
            Op::SendMail => &[MAIL_SEND],
        }
    }

    fn roles(self) -> &'static [&'static str] {
        use roles::*;
        match self {
            Op::ReadDevices | Op::WriteDevices | Op::ReadPolicy | Op::WritePolicy => {
                &[GLOBAL_ADMIN, AUTH_POLICY_ADMIN]
            }
            Op::ReadUsers | Op::SendMail => &[],
            Op::ReadMethods | Op::WriteMethods => {
                &[GLOBAL_ADMIN, AUTH_ADMIN, PRIVILEGED_AUTH_ADMIN]
            }
        }
    }
}

impl State {
    /// Checks that `principal` may do `op` (to `target_user`, an object id).
    ///
    /// A signed-in user sends mail only as themselves: no Entra role lets
    /// an admin send from another mailbox (that takes Exchange "Send As"
    /// rights, which the simulator does not model).
    pub(crate) fn allowed(
        &self,
        principal: &Principal,
        op: Op,
        target_user: Option<&str>,
    ) -> Result<(), Reply> {
        let ok = match principal {
            Principal::App { permissions } => op
                .permissions()
                .iter()
                .any(|p| permissions.iter().any(|have| have == p)),
            Principal::User { user_id } if op == Op::SendMail => {
                target_user.is_some_and(|target| target == user_id)
            }
            Principal::User { user_id } => {
                let roles = self
                    .users
                    .get(user_id)
                    .map(|u| u.roles.clone())
                    .unwrap_or_default();
                let needed = op.roles();
                let admin_target = target_user
                    .and_then(|id| self.users.get(id))
                    .is_some_and(|u| u.admin && u.id != *user_id);
                needed.is_empty()
                    || roles.iter().any(|r| {
                        needed.contains(&r.as_str()) && !(admin_target && r == roles::AUTH_ADMIN)
                    })
            }
        };
        match (ok, op) {
            (true, _) => Ok(()),
            // Exchange answers for mail, with its own code (observed:
            // an app without Mail.Send gets this).
            (false, Op::SendMail) => Err(Reply::error(
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            )),
            (false, _) => Err(Reply::error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )),
        }
    }
}
