//! Registration, login and the account view.

use api_types::auth::{RegisterRequest, Role, TokenResponse, UserResponse};

use crate::auth::password::{self, Hasher};
use crate::auth::sessions::Sessions;
use crate::auth::JwtKeys;
use crate::db::users::{self, UserRow};
use crate::db::{self, Db};
use crate::error::{AppError, AppResult};

fn role_of(row: &UserRow) -> Role {
    if row.role == "admin" {
        Role::Admin
    } else {
        Role::User
    }
}

/// The API view of a user row.
pub fn to_response(row: &UserRow) -> UserResponse {
    UserResponse {
        id: row.id.clone(),
        username: row.username.clone(),
        email: row.email.clone(),
        role: role_of(row),
        points_balance: row.points_balance,
        membership_tier: row.membership_tier.clone(),
        membership_expires_at: row.membership_expires_at.map(db::utc),
        created_at: db::utc(row.created_at),
    }
}

/// A hashing thread was not free in time: the client should retry shortly.
fn busy(_: password::Busy) -> AppError {
    AppError::Busy {
        retry_after_secs: 1,
    }
}

async fn hash_password(hasher: &Hasher, password: String) -> AppResult<String> {
    hasher
        .run(move || password::hash(&password))
        .await
        .map_err(busy)?
        .map_err(|e| AppError::internal(anyhow::anyhow!("password hashing failed: {e}")))
}

/// Create an account; `409 username_taken` when the name is in use.
pub async fn register(
    db: &Db,
    hasher: &Hasher,
    req: RegisterRequest,
    role: Role,
) -> AppResult<UserResponse> {
    let password_hash = hash_password(hasher, req.password).await?;
    let now = db::now();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: req.username,
        email: req.email.to_ascii_lowercase(),
        password_hash,
        role: role.as_str().to_string(),
        points_balance: 0,
        membership_tier: None,
        membership_expires_at: None,
        created_at: now,
        updated_at: now,
        token_version: 0,
    };
    match users::insert(db, &row).await {
        Ok(()) => Ok(to_response(&row)),
        Err(e) if e.is_unique_violation() => Err(AppError::conflict(
            "username_taken",
            "this username is already registered",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Check credentials and issue a token. The error never says whether the user exists.
pub async fn login(
    db: &Db,
    hasher: &Hasher,
    jwt: &JwtKeys,
    username: &str,
    password_text: String,
) -> AppResult<TokenResponse> {
    let user = users::find_by_username(db, username).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = hasher
        .run(move || {
            let stored = stored.as_deref().unwrap_or_else(|| password::dummy_hash());
            password::verify(&password_text, stored)
        })
        .await
        .map_err(busy)?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => return Err(AppError::InvalidCredentials),
    };
    // Only after the password: a disabled account is not revealed to a guesser.
    if users::disabled_at(db, &user.id).await?.is_some() {
        return Err(AppError::Denied {
            code: "account_disabled",
            message: "this account is disabled".into(),
        });
    }
    let access_token = jwt
        .issue(&user.id, role_of(&user), user.token_version)
        .map_err(AppError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: jwt.ttl_secs(),
        user: to_response(&user),
    })
}

/// Revoke every token of `user_id` issued so far (the new version is known here at once;
/// other replicas see it within `AUTH_CACHE_TTL_SECS`).
pub async fn logout_all(db: &Db, sessions: &Sessions, user_id: &str) -> AppResult<()> {
    let bumped = users::bump_token_version(db, user_id).await;
    sessions.forget(user_id);
    if bumped?.is_none() {
        return Err(AppError::Unauthorized("account no longer exists".into()));
    }
    // Hold the new version here, so a check that read the old one just before the bump
    // cannot cache it again (`Sessions::store` never lowers a version).
    sessions.refresh(db, user_id).await?;
    Ok(())
}

/// The account behind a token; 401 if it no longer exists.
pub async fn me(db: &Db, user_id: &str) -> AppResult<UserResponse> {
    users::find_by_id(db, user_id)
        .await?
        .map(|row| to_response(&row))
        .ok_or_else(|| AppError::Unauthorized("account no longer exists".into()))
}

/// `fenpay create-admin`: create the account as admin, or promote an existing one
/// (only after its password is confirmed, so the command cannot hijack accounts).
pub async fn create_admin(
    db: &Db,
    hasher: &Hasher,
    req: RegisterRequest,
) -> AppResult<UserResponse> {
    match register(db, hasher, req.clone(), Role::Admin).await {
        Ok(user) => Ok(user),
        Err(AppError::Conflict { .. }) => {
            let user = users::find_by_username(db, &req.username)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            let (given, stored) = (req.password.clone(), user.password_hash.clone());
            let matches = hasher
                .run(move || password::verify(&given, &stored))
                .await
                .map_err(busy)?;
            if !matches {
                return Err(AppError::conflict(
                    "username_taken",
                    "user exists and the password does not match; not promoting",
                ));
            }
            users::set_role(db, &req.username, Role::Admin.as_str()).await?;
            me(db, &user.id).await
        }
        Err(e) => Err(e),
    }
}
