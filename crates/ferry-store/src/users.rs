//! Named users, their roles, console sessions and personal API tokens.
//!
//! Passwords are hashed with **Argon2id** (memory-hard; RFC 9106) at the parameters of
//! [`PASSWORD_PARAMS`] and kept as PHC strings (`$argon2id$v=19$m=...`), so the parameters
//! travel with each hash and can be raised later without invalidating old ones. A session
//! secret, like a token secret, is stored only as its SHA-256; each session has its own CSRF
//! token (for requests a browser makes with the session cookie) and an expiry.
//!
//! What each role may do is the node's decision (`ferry-node`'s access rules); the store only
//! keeps who holds which roles.

use crate::fsutil::random_bytes;
use crate::time::{format_unix_millis, now_utc};
use crate::{Store, StoreError, sha256_hex, validate_name};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Argon2id with 19 MiB of memory, 2 passes, 1 lane: OWASP's recommended minimum for
/// Argon2id (2023), about 30–60 ms per hash on a server core — slow for a guesser, fine for a
/// sign-in.
pub const PASSWORD_PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Every session secret starts with this (recognisable if leaked, like token secrets).
pub const SESSION_PREFIX: &str = "frs_";

text_enum!(
    /// A user's roles, with separation of duties: each role can do one kind of thing.
    #[derive(PartialOrd, Ord)]
    UserRole, "role" {
        /// Users, tokens, partners, the node's settings.
        Admin => "admin",
        /// Registers datasets, grants and revokes them, publishes query services.
        DataSteward => "data_steward",
        /// Submits jobs, runs queries, requests deployments.
        Modeller => "modeller",
        /// Approves or rejects what partners propose.
        Approver => "approver",
        /// Reads everything, exports the audit trail.
        Auditor => "auditor",
    }
);

impl UserRole {
    pub const ALL: [UserRole; 5] = [
        UserRole::Admin,
        UserRole::DataSteward,
        UserRole::Modeller,
        UserRole::Approver,
        UserRole::Auditor,
    ];
}

/// A user as listed (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<UserRole>,
    pub created_at: String,
    /// Set once disabled: a disabled user cannot sign in, and its sessions and personal
    /// tokens stop working.
    pub disabled_at: Option<String>,
}

/// A live console session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: UserInfo,
    /// The value a browser must echo in `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    pub expires_at: String,
}

fn argon2() -> argon2::Argon2<'static> {
    let (m, t, p) = PASSWORD_PARAMS;
    let params = argon2::Params::new(m, t, p, None).expect("constant Argon2 parameters are valid");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(StoreError::invalid(format!(
            "the password has {chars} characters; at least {MIN_PASSWORD_CHARS} are required"
        )));
    }
    if password.len() > 1024 {
        return Err(StoreError::invalid(
            "the password is longer than 1024 bytes",
        ));
    }
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| StoreError::Key(format!("cannot encode a password salt: {e}")))?;
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StoreError::Key(format!("cannot hash the password: {e}")))?
        .to_string())
}

fn roles_from_json(text: &str) -> Result<Vec<UserRole>, StoreError> {
    crate::datasets::from_json(text, "user roles")
}

type RawUser = (String, String, String, Option<String>);

fn to_user((name, roles, created_at, disabled_at): RawUser) -> Result<UserInfo, StoreError> {
    Ok(UserInfo {
        name,
        roles: roles_from_json(&roles)?,
        created_at,
        disabled_at,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn normalise_roles(roles: &[UserRole]) -> Result<Vec<UserRole>, StoreError> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(StoreError::invalid("a user needs at least one role"));
    }
    Ok(roles)
}

impl Store {
    /// Creates a user with these roles and password (hashed with Argon2id).
    pub fn create_user(
        &self,
        name: &str,
        roles: &[UserRole],
        password: &str,
    ) -> Result<UserInfo, StoreError> {
        validate_name("user", name)?;
        let roles = normalise_roles(roles)?;
        let hash = hash_password(password)?;
        let created_at = now_utc();
        let conn = self.conn();
        let exists = conn
            .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::AlreadyExists {
                kind: "user",
                name: name.to_string(),
                hint: "change its roles or password instead".into(),
            });
        }
        conn.execute(
            "INSERT INTO users (name, roles_json, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, crate::datasets::to_json(&roles)?, hash, created_at],
        )?;
        Ok(UserInfo {
            name: name.to_string(),
            roles,
            created_at,
            disabled_at: None,
        })
    }

    pub fn user(&self, name: &str) -> Result<UserInfo, StoreError> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                "SELECT name, roles_json, created_at, disabled_at FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        match raw {
            Some(raw) => to_user(raw),
            None => Err(StoreError::NotFound {
                kind: "user",
                name: name.to_string(),
                known: Vec::new(),
            }),
        }
    }

    pub fn list_users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT name, roles_json, created_at, disabled_at FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.map(|r| to_user(r?)).collect()
    }

    pub fn set_user_roles(&self, name: &str, roles: &[UserRole]) -> Result<UserInfo, StoreError> {
        let roles = normalise_roles(roles)?;
        let changed = self.conn().execute(
            "UPDATE users SET roles_json = ?1 WHERE name = ?2",
            params![crate::datasets::to_json(&roles)?, name],
        )?;
        if changed == 0 {
            return Err(self.no_user(name));
        }
        self.user(name)
    }

    pub fn set_user_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE users SET password_hash = ?1 WHERE name = ?2",
            params![hash, name],
        )?;
        if changed == 0 {
            drop(conn);
            return Err(self.no_user(name));
        }
        // A new password ends every session opened with the old one.
        conn.execute("DELETE FROM user_sessions WHERE user_name = ?1", [name])?;
        Ok(())
    }

    /// Disables a user: sign-in refused, sessions ended, personal tokens revoked. The record
    /// stays for the audit trail.
    pub fn disable_user(&self, name: &str) -> Result<(), StoreError> {
        let now = now_utc();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE users SET disabled_at = ?1 WHERE name = ?2 AND disabled_at IS NULL",
            params![now, name],
        )?;
        if changed == 0 {
            drop(tx);
            drop(conn);
            return Err(self.no_user(name));
        }
        tx.execute("DELETE FROM user_sessions WHERE user_name = ?1", [name])?;
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE owner = ?2 AND revoked_at IS NULL",
            params![now, name],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn no_user(&self, name: &str) -> StoreError {
        let known = self
            .list_users()
            .map(|u| {
                u.into_iter()
                    .filter(|u| u.disabled_at.is_none())
                    .map(|u| u.name)
                    .collect()
            })
            .unwrap_or_default();
        StoreError::NotFound {
            kind: "active user",
            name: name.to_string(),
            known,
        }
    }

    /// The user if the name and password match an active user. An unknown name costs the same
    /// hash as a wrong password, so timing does not tell which names exist.
    pub fn check_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<UserInfo>, StoreError> {
        let stored: Option<(String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT password_hash, disabled_at FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (hash, disabled) = match stored {
            Some(s) => s,
            None => {
                // Spend the same work on a dummy hash.
                let _ = hash_password("a password of no user at all");
                return Ok(None);
            }
        };
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| StoreError::Db(format!("corrupt password hash of user '{name}': {e}")))?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if !ok || disabled.is_some() {
            return Ok(None);
        }
        self.user(name).map(Some)
    }

    /// Opens a console session for an active user, valid for `ttl`. Returns the session secret
    /// (for the cookie; stored only as its hash) and the session.
    pub fn create_session(
        &self,
        user: &str,
        ttl: std::time::Duration,
    ) -> Result<(String, SessionInfo), StoreError> {
        let info = self.user(user)?;
        if info.disabled_at.is_some() {
            return Err(self.no_user(user));
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let secret = format!("{SESSION_PREFIX}{}", b64.encode(random_bytes::<32>()?));
        let csrf = b64.encode(random_bytes::<24>()?);
        let expires_ms = now_ms().saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let conn = self.conn();
        // Expired sessions go whenever a new one is made.
        conn.execute(
            "DELETE FROM user_sessions WHERE expires_ms < ?1",
            [now_ms()],
        )?;
        conn.execute(
            "INSERT INTO user_sessions (secret_sha256, user_name, csrf_token, created_at, expires_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sha256_hex(secret.as_bytes()), user, csrf, now_utc(), expires_ms],
        )?;
        Ok((
            secret,
            SessionInfo {
                user: info,
                csrf_token: csrf,
                expires_at: format_unix_millis(expires_ms),
            },
        ))
    }

    /// The live session of this secret (`None`: unknown, expired, or its user disabled).
    pub fn session(&self, secret: &str) -> Result<Option<SessionInfo>, StoreError> {
        if !secret.starts_with(SESSION_PREFIX) || secret.len() > 256 {
            return Ok(None);
        }
        let row: Option<(String, String, i64)> = self
            .conn()
            .query_row(
                "SELECT user_name, csrf_token, expires_ms FROM user_sessions WHERE secret_sha256 = ?1",
                [sha256_hex(secret.as_bytes())],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((user, csrf, expires_ms)) = row else {
            return Ok(None);
        };
        if expires_ms <= now_ms() {
            return Ok(None);
        }
        let user = self.user(&user)?;
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(SessionInfo {
            user,
            csrf_token: csrf,
            expires_at: format_unix_millis(expires_ms),
        }))
    }

    /// Ends a session (signing out). Unknown secrets are ignored.
    pub fn end_session(&self, secret: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM user_sessions WHERE secret_sha256 = ?1",
            [sha256_hex(secret.as_bytes())],
        )?;
        Ok(())
    }

    /// Marks a token as a user's personal token: it then acts as that user, with the user's
    /// roles, and is revoked when the user is disabled.
    pub fn set_token_owner(&self, token: &str, user: &str) -> Result<(), StoreError> {
        self.user(user)?;
        let changed = self.conn().execute(
            "UPDATE api_tokens SET owner = ?1 WHERE name = ?2 AND revoked_at IS NULL",
            params![user, token],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "live token",
                name: token.to_string(),
                known: Vec::new(),
            });
        }
        Ok(())
    }

    /// The user a token belongs to (`None`: a service-account token).
    pub fn token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT owner FROM api_tokens WHERE name = ?1",
                [token],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }
}
