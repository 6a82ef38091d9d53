//! A key lease: issued for one attempt, revoked when the attempt ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::broker_client::{BrokerClient, BrokerError, IssuedKey, KeyRequest};
use crate::metrics::ActivityMetrics;

/// One attempt's key. Revoke it with [`KeyLease::revoke`]; if the attempt
/// ends without that (a panic, or its future dropped by cancellation or
/// shutdown), dropping the lease revokes it in the background.
#[derive(Debug)]
pub struct KeyLease {
    key: Option<IssuedKey>,
    /// How long the issue call took, for the lease's overhead.
    issued_in: Duration,
    revoker: Revoker,
}

#[derive(Debug, Clone)]
struct Revoker {
    broker: BrokerClient,
    metrics: Arc<ActivityMetrics>,
    budget: Duration,
}

/// Revokes the still-active keys of the earlier attempts of `request`'s
/// activity in the same run (same label, same `run_id`, a lower `attempt`):
/// attempt `attempt` starts only after those ended or timed out, so none can
/// still be in use, yet a worker killed mid-attempt never revoked its key.
/// Best effort: a failure is logged and left to the key's TTL. Returns how
/// many were revoked.
pub async fn revoke_predecessors(
    broker: &BrokerClient,
    request: &KeyRequest,
    attempt: u32,
) -> usize {
    if attempt <= 1 {
        return 0;
    }
    let run_id = request.metadata.get("run_id").filter(|id| !id.is_empty());
    let keys = match broker.list_keys(&request.label, "active").await {
        Ok(keys) => keys,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list the earlier attempts' keys; their TTL ends them");
            return 0;
        }
    };
    let mut revoked = 0;
    for key in keys {
        let earlier = key
            .metadata
            .get("attempt")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < attempt);
        if key.label != request.label || key.metadata.get("run_id") != run_id || !earlier {
            continue;
        }
        match broker.revoke(&key.id).await {
            Ok(()) => {
                tracing::info!(predecessor_key_id = %key.id, "revoked an earlier attempt's key");
                revoked += 1;
            }
            Err(err) => {
                tracing::warn!(predecessor_key_id = %key.id, error = %err, "cannot revoke an earlier attempt's key; its TTL ends it");
            }
        }
    }
    revoked
}

impl KeyLease {
    /// Issues a key for `request`.
    pub async fn issue(
        broker: &BrokerClient,
        request: &KeyRequest,
        metrics: Arc<ActivityMetrics>,
        revoke_budget: Duration,
    ) -> Result<Self, BrokerError> {
        let started = Instant::now();
        let issued = broker.issue(request).await;
        let issued_in = started.elapsed();
        metrics.issue_seconds.observe(issued_in.as_secs_f64());
        let key = issued?;
        metrics.keys_issued.inc();
        Ok(Self {
            key: Some(key),
            issued_in,
            revoker: Revoker {
                broker: broker.clone(),
                metrics,
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
    /// Records the lease's overhead: the issue and revoke calls together.
    pub async fn revoke(mut self) {
        if let Some(key) = self.key.take() {
            let revoked_in = self.revoker.revoke(key.id, key.label).await;
            self.revoker
                .metrics
                .lease_seconds
                .observe((self.issued_in + revoked_in).as_secs_f64());
        }
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let revoker = self.revoker.clone();
                runtime.spawn(async move {
                    revoker.revoke(key.id, key.label).await;
                });
            }
            Err(_) => {
                self.revoker.metrics.revocation_failures.inc();
                tracing::error!(key_id = %key.id, label = %key.label, "no runtime to revoke the key; its TTL will expire it");
            }
        }
    }
}

impl Revoker {
    /// Revokes the key within the budget; returns how long that took.
    async fn revoke(&self, key_id: String, label: String) -> Duration {
        let started = Instant::now();
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
        let revoked = tokio::time::timeout(self.budget, attempts).await.is_ok();
        let revoked_in = started.elapsed();
        self.metrics
            .revoke_seconds
            .observe(revoked_in.as_secs_f64());
        if revoked {
            self.metrics.keys_revoked.inc();
            tracing::info!(key_id = %key_id, label = %label, "key revoked");
        } else {
            self.metrics.revocation_failures.inc();
            tracing::error!(key_id = %key_id, label = %label, budget = ?self.budget, "key not revoked; its TTL will expire it");
        }
        revoked_in
    }
}
