//! Account management by an operator: what a disable, enable, grant or revoke of the
//! admin role does to an account, and when it is refused. The one hard rule: the last
//! active admin can be neither disabled nor demoted (no way back into the console
//! without SQL otherwise).

/// An operator's change to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountChange {
    Disable,
    Enable,
    GrantAdmin,
    RevokeAdmin,
}

impl AccountChange {
    /// The audit log's action code.
    pub fn action(self) -> &'static str {
        match self {
            AccountChange::Disable => "account.disable",
            AccountChange::Enable => "account.enable",
            AccountChange::GrantAdmin => "account.grant_admin",
            AccountChange::RevokeAdmin => "account.revoke_admin",
        }
    }

    /// Whether it can leave the console without an active admin.
    pub fn removes_admin(self) -> bool {
        matches!(self, AccountChange::Disable | AccountChange::RevokeAdmin)
    }
}

/// The parts of an account a change reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    pub admin: bool,
    pub disabled: bool,
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRefusal {
    LastAdmin,
}

impl AccountRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            AccountRefusal::LastAdmin => "last_admin",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            AccountRefusal::LastAdmin => {
                "this is the last active admin: grant the role to another account first"
            }
        }
    }
}

/// The account after `change`, `Ok(None)` when it already is so (nothing to write), or
/// the refusal. `active_admins` are the ids of the enabled admins, read under lock.
pub fn decide(
    change: AccountChange,
    id: &str,
    now: &AccountState,
    active_admins: &[String],
) -> Result<Option<AccountState>, AccountRefusal> {
    let after = match change {
        AccountChange::Disable => AccountState {
            disabled: true,
            ..now.clone()
        },
        AccountChange::Enable => AccountState {
            disabled: false,
            ..now.clone()
        },
        AccountChange::GrantAdmin => AccountState {
            admin: true,
            ..now.clone()
        },
        AccountChange::RevokeAdmin => AccountState {
            admin: false,
            ..now.clone()
        },
    };
    if &after == now {
        return Ok(None);
    }
    let was_active_admin = now.admin && !now.disabled;
    let stays_active_admin = after.admin && !after.disabled;
    if change.removes_admin()
        && was_active_admin
        && !stays_active_admin
        && !active_admins.iter().any(|a| a != id)
    {
        return Err(AccountRefusal::LastAdmin);
    }
    Ok(Some(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(admin: bool, disabled: bool) -> AccountState {
        AccountState { admin, disabled }
    }

    #[test]
    fn the_last_active_admin_stays() {
        let only = vec!["a".to_string()];
        assert_eq!(
            decide(AccountChange::RevokeAdmin, "a", &st(true, false), &only),
            Err(AccountRefusal::LastAdmin)
        );
        assert_eq!(
            decide(AccountChange::Disable, "a", &st(true, false), &only),
            Err(AccountRefusal::LastAdmin)
        );
        let two = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            decide(AccountChange::RevokeAdmin, "a", &st(true, false), &two),
            Ok(Some(st(false, false)))
        );
        // A disabled admin is no active admin: demoting it removes nobody.
        assert_eq!(
            decide(AccountChange::RevokeAdmin, "c", &st(true, true), &only),
            Ok(Some(st(false, true)))
        );
        // Users come and go freely.
        assert_eq!(
            decide(AccountChange::Disable, "u", &st(false, false), &only),
            Ok(Some(st(false, true)))
        );
    }

    #[test]
    fn a_change_to_what_already_is_writes_nothing() {
        assert_eq!(
            decide(AccountChange::Disable, "u", &st(false, true), &[]),
            Ok(None)
        );
        assert_eq!(
            decide(AccountChange::GrantAdmin, "u", &st(true, false), &[]),
            Ok(None)
        );
        assert_eq!(
            decide(AccountChange::Enable, "u", &st(false, true), &[]),
            Ok(Some(st(false, false)))
        );
    }
}
