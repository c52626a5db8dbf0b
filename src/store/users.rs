//! The SQL of the HTTP API's users: name, role, and the SHA-256 of their token.
//!
//! Why SHA-256 and not argon2: a token is 32 random bytes (256 bits), not a password a
//! person chose, so there is no dictionary to slow down, and a fast hash lets every API
//! request be checked in microseconds (argon2 costs tens of milliseconds by design). A
//! leaked table still gives away no token.

use super::{now_ms, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub created_at_ms: i64,
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The roles a user of the API can have (`api::auth::Role` is their typed form).
pub const ROLES: [&str; 3] = ["admin", "supervisor", "agent"];

/// Why a user could not be added.
#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    #[error("role {0:?}: \"admin\", \"supervisor\" or \"agent\"")]
    Role(String),
    #[error("a user name is 1-64 letters, digits, '.', '_' or '-'")]
    Name,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Adds (or re-keys) a user with a new random token, which it returns (shown once: only
    /// its hash is kept). Shared by the API and the command line.
    pub async fn user_new(&self, name: &str, role: &str) -> Result<String, NewUserError> {
        if !ROLES.contains(&role) {
            return Err(NewUserError::Role(role.to_string()));
        }
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(NewUserError::Name);
        }
        let bytes: [u8; 32] = rand::random();
        let token: String = format!(
            "vxd_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        self.user_put(name, role, &token).await?;
        Ok(token)
    }

    /// Adds a user (or replaces their role and token); `token` is kept only as its hash.
    pub async fn user_put(&self, name: &str, role: &str, token: &str) -> Result<(), StoreError> {
        let (name, role, hash) = (name.to_string(), role.to_string(), token_hash(token));
        self.read(move |db| {
            db.execute(
                "INSERT INTO users (name, role, token_hash, created_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash",
                params![name, role, hash, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn user_remove(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.read(move |db| Ok(db.execute("DELETE FROM users WHERE name = ?1", [name])? > 0))
            .await
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.read(|db| {
            let mut st = db.prepare("SELECT name, role, created_at_ms FROM users ORDER BY name")?;
            let rows = st.query_map([], |r| {
                Ok(UserRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    created_at_ms: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// The user whose token this is.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<UserRow>, StoreError> {
        let hash = token_hash(token);
        self.read(move |db| {
            db.query_row(
                "SELECT name, role, created_at_ms FROM users WHERE token_hash = ?1",
                [hash],
                |r| {
                    Ok(UserRow {
                        name: r.get(0)?,
                        role: r.get(1)?,
                        created_at_ms: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        self.read(|db| db.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0)))
            .await
    }
}
