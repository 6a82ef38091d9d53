//! Why the broker refuses its settings.

/// A setting the broker refuses to start with. The message names the setting, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The admin token is an example value or too short to resist guessing.
    #[error(
        "KEYLEASE_BROKER_ADMIN_TOKEN (--admin-token) {0}; make one with `openssl rand -hex 32`"
    )]
    WeakAdminToken(&'static str),
    /// A limit is out of its range; the message names the setting.
    #[error("{0}")]
    Limit(String),
    /// The database settings do not make a usable URL.
    #[error("KEYLEASE_BROKER_DATABASE_URL (--database-url) {0}")]
    Database(String),
}
