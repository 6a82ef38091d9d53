//! A key lease: issued for one attempt, revoked when the attempt ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;

use crate::broker_client::{BrokerClient, BrokerError, IssuedKey, KeyRequest};

/// Counters of what leases did, for metrics and tests.
#[derive(Debug, Default)]
pub struct LeaseStats {
    issued: AtomicU64,
    revoked: AtomicU64,
    revoke_failures: AtomicU64,
}

impl LeaseStats {
    /// Keys issued.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// Keys revoked.
    pub fn revoked(&self) -> u64 {
        self.revoked.load(Ordering::Relaxed)
    }

    /// Revocations that failed within their time budget (the TTL covers those keys).
    pub fn revoke_failures(&self) -> u64 {
        self.revoke_failures.load(Ordering::Relaxed)
    }
}

/// One attempt's key. Revoke it with [`KeyLease::revoke`]; if the attempt
/// ends without that (a panic, or its future dropped by cancellation or
/// shutdown), dropping the lease revokes it in the background.
#[derive(Debug)]
pub struct KeyLease {
    key: Option<IssuedKey>,
    revoker: Revoker,
}

#[derive(Debug, Clone)]
struct Revoker {
    broker: BrokerClient,
    stats: Arc<LeaseStats>,
    budget: Duration,
}

impl KeyLease {
    /// Issues a key for `request`.
    pub async fn issue(
        broker: &BrokerClient,
        request: &KeyRequest,
        stats: Arc<LeaseStats>,
        revoke_budget: Duration,
    ) -> Result<Self, BrokerError> {
        let key = broker.issue(request).await?;
        stats.issued.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            key: Some(key),
            revoker: Revoker {
                broker: broker.clone(),
                stats,
                budget: revoke_budget,
            },
        })
    }

    fn key(&self) -> &IssuedKey {
        // Invariant: `key` is only taken by `revoke(self)` and `drop`, after which the lease is gone.
        self.key.as_ref().expect("a live lease holds its key")
    }

    /// The key's id (not a secret).
    pub fn id(&self) -> &str {
        &self.key().id
    }

    /// The key's label.
    pub fn label(&self) -> &str {
        &self.key().label
    }

    /// The vault token, for the proxy's `Authorization` header only.
    pub fn token(&self) -> &SecretString {
        &self.key().token
    }

    /// The key's lifetime as the broker set it.
    pub fn ttl(&self) -> chrono::Duration {
        self.key().expires_at - self.key().created_at
    }

    /// Revokes the key, retrying within the revocation budget. Never fails:
    /// a key that cannot be revoked is logged and counted, and expires by its TTL.
    pub async fn revoke(mut self) {
        if let Some(key) = self.key.take() {
            self.revoker.revoke(key.id, key.label).await;
        }
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let revoker = self.revoker.clone();
                runtime.spawn(async move { revoker.revoke(key.id, key.label).await });
            }
            Err(_) => {
                self.revoker
                    .stats
                    .revoke_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(key_id = %key.id, label = %key.label, "no runtime to revoke the key; its TTL will expire it");
            }
        }
    }
}

impl Revoker {
    async fn revoke(&self, key_id: String, label: String) {
        let attempts = async {
            let mut delay = Duration::from_millis(100);
            loop {
                match self.broker.revoke(&key_id).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(key_id = %key_id, label = %label, error = %err, "revocation failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        };
        if tokio::time::timeout(self.budget, attempts).await.is_ok() {
            self.stats.revoked.fetch_add(1, Ordering::Relaxed);
            tracing::info!(key_id = %key_id, label = %label, "key revoked");
        } else {
            self.stats.revoke_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(key_id = %key_id, label = %label, budget = ?self.budget, "key not revoked; its TTL will expire it");
        }
    }
}
