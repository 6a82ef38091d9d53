//! Prometheus metrics of the broker, served at `GET /metrics` ([`crate::routes::health`]). None names a key, label or token.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a proxied request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyLabels {
    /// First path segment, e.g. `stripe`.
    pub vendor: String,
    /// Status answered to the caller.
    pub status: u16,
}

/// Why the HTTP layer ended a connection before any handler saw a request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `too_large` (a request line or headers past the limit: 414 or 431),
    /// `header_timeout`, or `malformed`.
    pub reason: &'static str,
}

/// Which key call a time is of.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyCallLabels {
    /// `issue` (`POST /v1/keys`) or `revoke` (`DELETE /v1/keys/{id}`).
    pub call: &'static str,
}

/// Labels of the proxy latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabels {
    /// First path segment, e.g. `stripe`.
    pub vendor: String,
}

/// Labels of a table's row counts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    /// The table: `audit`, `keys`, `spend`, `objects`, `object_pairs` (with `pending_pairs`),
    /// `idempotent_requests`, `role_spend`.
    pub table: &'static str,
}

/// What the broker counts.
#[derive(Debug)]
pub struct BrokerMetrics {
    registry: Registry,
    /// Keys issued.
    pub keys_issued: Counter,
    /// Keys revoked, one by one or by label prefix.
    pub keys_revoked: Counter,
    /// Money-moving requests refused at the cap.
    pub cap_exhausted: Counter,
    /// Proxied requests that named no valid key (summarised in the audit).
    pub unauthenticated: Counter,
    /// Connections the HTTP layer ended before a handler saw a request.
    pub refused_by_http: Family<RefusedLabels, Counter>,
    /// Proxied requests by vendor and status.
    pub proxied: Family<ProxyLabels, Counter>,
    /// Seconds per proxied request, upstream included.
    pub proxy_seconds: Family<VendorLabels, Histogram>,
    /// Time per key issue or revoke that answered, from its caller
    /// identified to its answer (an issue's body still to come, and its
    /// durable commit, included).
    pub key_call_seconds: Family<KeyCallLabels, Histogram>,
    /// Rows each table held when tidy last counted them.
    pub table_rows: Family<TableLabels, Gauge>,
    /// Rows tidy deleted, by table.
    pub rows_deleted: Family<TableLabels, Counter>,
    /// Audit records `--audit-log` could not write.
    pub audit_log_failures: Counter,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let keys_issued = Counter::default();
        let keys_revoked = Counter::default();
        let cap_exhausted = Counter::default();
        let unauthenticated = Counter::default();
        let refused_by_http = Family::<RefusedLabels, Counter>::default();
        let proxied = Family::<ProxyLabels, Counter>::default();
        // 1 ms to about 33 s: the upstream timeout's range.
        let proxy_seconds = Family::<VendorLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "keylease_broker_keys_issued",
            "Keys issued",
            keys_issued.clone(),
        );
        registry.register(
            "keylease_broker_keys_revoked",
            "Keys revoked",
            keys_revoked.clone(),
        );
        registry.register(
            "keylease_broker_cap_exhausted",
            "Requests refused at a key's spend cap",
            cap_exhausted.clone(),
        );
        registry.register(
            "keylease_broker_unauthenticated_requests",
            "Proxied requests that named no valid key: an unknown token, vendor or method, a malformed path",
            unauthenticated.clone(),
        );
        registry.register(
            "keylease_broker_refused_by_http",
            "Connections ended before any handler saw a request: headers too large, too slow, or malformed",
            refused_by_http.clone(),
        );
        registry.register(
            "keylease_broker_proxied_requests",
            "Proxied requests by vendor and status",
            proxied.clone(),
        );
        registry.register(
            "keylease_broker_proxy_seconds",
            "Time per proxied request",
            proxy_seconds.clone(),
        );
        // 50 µs to about 13 s in steps of √2: the worker's lease buckets, so
        // that the two read side by side.
        let key_call_seconds = Family::<KeyCallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, std::f64::consts::SQRT_2, 37))
        });
        registry.register(
            "keylease_broker_key_call_seconds",
            "Time per key issue or revoke answered, its durable commit included",
            key_call_seconds.clone(),
        );
        let table_rows = Family::<TableLabels, Gauge>::default();
        let rows_deleted = Family::<TableLabels, Counter>::default();
        let audit_log_failures = Counter::default();
        registry.register(
            "keylease_broker_table_rows",
            "Rows each table held when tidy last counted them (every tidy interval)",
            table_rows.clone(),
        );
        registry.register(
            "keylease_broker_rows_deleted",
            "Rows deleted by retention, by table",
            rows_deleted.clone(),
        );
        registry.register(
            "keylease_broker_audit_log_failures",
            "Audit records the --audit-log file could not take",
            audit_log_failures.clone(),
        );
        Self {
            registry,
            keys_issued,
            keys_revoked,
            cap_exhausted,
            unauthenticated,
            refused_by_http,
            proxied,
            proxy_seconds,
            key_call_seconds,
            table_rows,
            rows_deleted,
            audit_log_failures,
        }
    }
}

impl BrokerMetrics {
    /// Notes how long a key `call` that answered took.
    pub fn key_call(&self, call: &'static str, took: std::time::Duration) {
        self.key_call_seconds
            .get_or_create(&KeyCallLabels { call })
            .observe(took.as_secs_f64());
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
