//! API tokens. The secret is shown once; the database keeps only its SHA-256, so a copy of
//! the database does not let anyone call the API.

use crate::fsutil::random_bytes;
use crate::time::now_utc;
use crate::{Store, StoreError, sha256_hex, validate_name};
use base64::Engine as _;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Every token secret starts with this, so a leaked secret is recognisable (secret scanners)
/// and a wrong kind of string is rejected before hashing.
pub const TOKEN_PREFIX: &str = "fry_";

/// What a token may do (the node service decides what each role allows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    Admin,
    User,
    ReadOnly,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::User => "user",
            TokenRole::ReadOnly => "read_only",
        }
    }
}

impl std::str::FromStr for TokenRole {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "admin" => Ok(TokenRole::Admin),
            "user" => Ok(TokenRole::User),
            "read_only" => Ok(TokenRole::ReadOnly),
            other => Err(StoreError::invalid(format!(
                "unknown token role '{other}' (expected admin, user or read_only)"
            ))),
        }
    }
}

impl std::fmt::Display for TokenRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as listed (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: TokenRole,
    pub created_at: String,
    /// Set once revoked; a revoked token verifies as nothing.
    pub revoked_at: Option<String>,
}

fn row_to_info(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_info(
    (name, role, created_at, revoked_at): (String, String, String, Option<String>),
) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        name,
        role: role.parse()?,
        created_at,
        revoked_at,
    })
}

impl Store {
    /// Creates a token and returns it with its secret (`fry_` + 43 base64url characters for
    /// 32 random bytes). The secret cannot be recovered later. A name may be reused once its
    /// previous token was revoked.
    pub fn create_token(
        &self,
        name: &str,
        role: TokenRole,
    ) -> Result<(TokenInfo, String), StoreError> {
        validate_name("token", name)?;
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        let info = TokenInfo {
            name: name.to_string(),
            role,
            created_at: now_utc(),
            revoked_at: None,
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Option<String>> = tx
            .query_row(
                "SELECT revoked_at FROM api_tokens WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(None) => {
                return Err(StoreError::AlreadyExists {
                    kind: "token",
                    name: name.to_string(),
                    hint: "revoke it first or choose another name".into(),
                });
            }
            Some(Some(_)) => {
                tx.execute("DELETE FROM api_tokens WHERE name = ?1", [name])?;
            }
            None => {}
        }
        tx.execute(
            "INSERT INTO api_tokens (name, role, secret_sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), sha256_hex(secret.as_bytes()), info.created_at],
        )?;
        tx.commit()?;
        Ok((info, secret))
    }

    /// The live token this secret belongs to, or `None` (unknown, malformed or revoked).
    /// Every live token's hash is compared in constant time, so timing does not reveal how
    /// much of a guessed hash matched.
    pub fn verify_token(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 256 {
            return Ok(None);
        }
        let presented = sha256_hex(secret.as_bytes());
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, role, created_at, revoked_at, secret_sha256 FROM api_tokens WHERE revoked_at IS NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((row_to_info(r)?, r.get::<_, String>(4)?)))?;
        let mut found = None;
        for row in rows {
            let (info, stored) = row?;
            if bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(info);
            }
        }
        found.map(to_info).transpose()
    }

    /// All tokens, revoked ones included, by name.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name")?;
        let rows = stmt.query_map([], row_to_info)?;
        rows.map(|r| to_info(r?)).collect()
    }

    /// Revokes a live token; the record stays (with `revoked_at`) for the audit trail.
    pub fn revoke_token(&self, name: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
            params![now_utc(), name],
        )?;
        if changed == 0 {
            let mut stmt =
                conn.prepare("SELECT name FROM api_tokens WHERE revoked_at IS NULL ORDER BY name")?;
            let known = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            return Err(StoreError::NotFound {
                kind: "live token",
                name: name.to_string(),
                known,
            });
        }
        Ok(())
    }
}
