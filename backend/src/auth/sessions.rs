//! Token revocation. Every account has a token version (`users.token_version`), carried
//! in each token it is issued (`ver`); a role change or "log out everywhere" bumps it and
//! every older token, stream tokens included, is refused from then on. Each request
//! checks its token's version against the account's, from a small in-process cache so the
//! hot paths (order-status, event streams) do not read the database every time.
//!
//! The cache holds an account's version and role for `AUTH_CACHE_TTL_SECS` (default 5 s).
//! A bump made by this process updates its copy at once; a bump made by another replica
//! (or by `fenpay create-admin`) is seen here within the TTL. A token newer than the
//! cached version always reads the database (this copy is the stale one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api_types::auth::Role;

use crate::db::{users, Db};
use crate::error::{AppError, AppResult};

/// Most accounts cached at once; past it, expired entries go (then all of them).
const CAPACITY: usize = 100_000;

/// What the cache knows of an account: `None` when it does not exist; its version and
/// role, the role `None` while the account is disabled.
type Known = Option<(i64, Option<Role>)>;

#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Known, Instant)>>,
}

fn role_of(stored: &str) -> Role {
    if stored == "admin" {
        Role::Admin
    } else {
        Role::User
    }
}

fn known_of(state: Option<(i64, String, bool)>) -> Known {
    state.map(|(v, role, disabled)| (v, (!disabled).then(|| role_of(&role))))
}

fn decide(known: Known, ver: i64) -> AppResult<Role> {
    match known {
        None => Err(AppError::Unauthorized("account no longer exists".into())),
        Some((current, None)) if current == ver => {
            Err(AppError::Unauthorized("account disabled".into()))
        }
        Some((current, Some(role))) if current == ver => Ok(role),
        Some(_) => Err(AppError::Unauthorized("token revoked".into())),
    }
}

impl Sessions {
    /// `ttl` zero reads the database on every request.
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The account's current role when `sub` exists and `ver` is its token version;
    /// 401 `unauthorized` otherwise.
    pub async fn check(&self, db: &Db, sub: &str, ver: i64) -> AppResult<Role> {
        match self.cached(sub) {
            // Gone accounts never come back; versions only grow, so an older token is
            // revoked whatever the database says now.
            Some(None) => return decide(None, ver),
            Some(Some((current, role))) if current >= ver => {
                return decide(Some((current, role)), ver)
            }
            _ => {}
        }
        let known = known_of(users::token_state(db, sub).await?);
        self.store(sub, known);
        decide(known, ver)
    }

    /// The account's current token version (a merchant app's user, whose own tokens
    /// carry none, is checked at this version); 401 `unauthorized` when it is gone.
    pub async fn current(&self, db: &Db, sub: &str) -> AppResult<i64> {
        let known = match self.cached(sub) {
            Some(known) => known,
            None => {
                let known = known_of(users::token_state(db, sub).await?);
                self.store(sub, known);
                known
            }
        };
        match known {
            Some((version, Some(_))) => Ok(version),
            other => decide(other, other.map_or(0, |(v, _)| v)).map(|_| 0),
        }
    }

    /// Record what this process just wrote (a bump), so its next check needs no read.
    pub fn store(&self, sub: &str, known: Known) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Versions only grow and a gone account never comes back: a read that started
        // before a bump (and finishes after it) must not put the older version back.
        if let Some((held, _)) = entries.get(sub) {
            let older = match (held, &known) {
                (None, _) => true,
                (Some((v_held, _)), Some((v_new, _))) => v_new < v_held,
                (Some(_), None) => false,
            };
            if older {
                return;
            }
        }
        if entries.len() >= CAPACITY && !entries.contains_key(sub) {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(sub.to_string(), (known, now));
    }

    /// Read the account's version and role now and hold them.
    pub async fn refresh(&self, db: &Db, sub: &str) -> AppResult<()> {
        let known = known_of(users::token_state(db, sub).await?);
        self.store(sub, known);
        Ok(())
    }

    /// Forget an account (its next check reads the database).
    pub fn forget(&self, sub: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(sub);
    }

    fn cached(&self, sub: &str) -> Option<Known> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(sub)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(known, _)| *known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_decide() {
        assert!(matches!(
            decide(Some((2, Some(Role::Admin))), 2),
            Ok(Role::Admin)
        ));
        assert!(decide(Some((3, Some(Role::Admin))), 2).is_err());
        assert!(decide(None, 0).is_err());
        // A disabled account's current tokens are refused too.
        assert!(decide(Some((2, None)), 2).is_err());
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_stores_nothing() {
        let s = Sessions::new(Duration::from_secs(60));
        s.store("u", Some((1, Some(Role::User))));
        assert_eq!(s.cached("u"), Some(Some((1, Some(Role::User)))));
        s.forget("u");
        assert_eq!(s.cached("u"), None);
        // A read that started before a bump finishes after it: the older version stays out.
        s.store("u", Some((2, Some(Role::User))));
        s.store("u", Some((1, Some(Role::Admin))));
        assert_eq!(s.cached("u"), Some(Some((2, Some(Role::User)))));
        s.store("u", None);
        s.store("u", Some((3, Some(Role::User))));
        assert_eq!(s.cached("u"), Some(None), "a gone account never comes back");
        let off = Sessions::new(Duration::ZERO);
        off.store("u", Some((1, Some(Role::User))));
        assert_eq!(off.cached("u"), None);
    }
}
