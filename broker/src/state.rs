//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{BrokerConfig, UsdRates};
use crate::metrics::BrokerMetrics;
use crate::store::Store;
use crate::stripe::StripeApi;
use crate::unauthenticated::Unauthenticated;
use secrecy::SecretString;
use tokio_util::task::TaskTracker;

/// Shared, cheaply cloned state of a running broker.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    admin_token: SecretString,
    stripe: StripeApi,
    max_ttl: Duration,
    usd_rates: UsdRates,
    upstream: reqwest::Client,
    body_timeout: Duration,
    upstream_timeout: Duration,
    metrics: BrokerMetrics,
    in_flight: TaskTracker,
    unauthenticated: Unauthenticated,
    body_budget: Arc<tokio::sync::Semaphore>,
    role_budget: crate::role_budget::RoleBudget,
}

/// Bytes of request bodies the broker holds at once, in KiB: 64 MiB, 64
/// bodies at the 1 MiB limit, thousands of the bodies Stripe calls carry.
pub const BODY_BUDGET_KIB: usize = 64 * 1024;

impl AppState {
    /// Builds the state from `config` around an opened store.
    pub fn new(config: &BrokerConfig, store: Store) -> Result<Self, reqwest::Error> {
        // One pooled client for all upstream calls; redirects are never
        // followed, so a 3xx goes back to the caller as upstream sent it.
        let upstream = reqwest::Client::builder()
            .timeout(config.upstream_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90));
        // The environment's proxy variables are not a place to send the secret.
        // `run` has checked the proxy URL; one that no longer parses goes nowhere.
        let proxy = config.upstream_proxy_url().ok().flatten();
        let upstream = match proxy {
            Some(proxy) => upstream.proxy(reqwest::Proxy::all(proxy)?),
            None => upstream.no_proxy(),
        }
        .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                admin_token: config.admin_token.clone(),
                stripe: StripeApi {
                    api_base: config.stripe_api_base.clone(),
                    secret: config.stripe_secret_key.clone(),
                },
                max_ttl: config.max_ttl,
                usd_rates: config.usd_rates.clone(),
                upstream,
                body_timeout: config.body_timeout,
                upstream_timeout: config.upstream_timeout,
                metrics: BrokerMetrics::default(),
                in_flight: TaskTracker::new(),
                unauthenticated: Unauthenticated::default(),
                body_budget: Arc::new(tokio::sync::Semaphore::new(BODY_BUDGET_KIB)),
                role_budget: crate::role_budget::RoleBudget::default(),
            }),
        })
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The admin API's bearer token.
    pub fn admin_token(&self) -> &SecretString {
        &self.inner.admin_token
    }

    /// Stripe's API and the secret for it.
    pub fn stripe(&self) -> &StripeApi {
        &self.inner.stripe
    }

    /// Longest TTL a key may have.
    pub fn max_ttl(&self) -> Duration {
        self.inner.max_ttl
    }

    /// USD rates for non-USD spend.
    pub fn usd_rates(&self) -> &UsdRates {
        &self.inner.usd_rates
    }

    /// The broker's Prometheus metrics.
    pub fn metrics(&self) -> &BrokerMetrics {
        &self.inner.metrics
    }

    /// The proxied requests being handled: a stopping broker waits for them
    /// all, so a forwarded request is settled and audited even after its
    /// connection was closed.
    pub fn in_flight(&self) -> &TaskTracker {
        &self.inner.in_flight
    }

    /// Requests without a valid key, counted until their summary is written.
    pub fn unauthenticated(&self) -> &Unauthenticated {
        &self.inner.unauthenticated
    }

    /// What this broker leased of each role's daily cap.
    pub fn role_budget(&self) -> &crate::role_budget::RoleBudget {
        &self.inner.role_budget
    }

    /// The KiB of request bodies the broker may still take in ([`BODY_BUDGET_KIB`] in all).
    pub fn body_budget(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.body_budget
    }

    /// How long a request body may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        self.inner.body_timeout
    }

    /// How long one upstream call may take.
    pub fn upstream_timeout(&self) -> Duration {
        self.inner.upstream_timeout
    }

    /// The pooled upstream HTTP client.
    pub fn upstream(&self) -> &reqwest::Client {
        &self.inner.upstream
    }
}
