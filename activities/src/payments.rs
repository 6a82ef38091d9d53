//! Activities `charge`, `refund` and `reconcile`: each attempt issues its own
//! key, calls Stripe through the proxy with it, and revokes it however the
//! attempt ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keylease_workflows::contract::{
    ChargeInput, ChargeOutput, ReconcileInput, ReconcileOutput, RefundInput, RefundOutput,
    SCHEDULE_TO_CLOSE_HEADER,
};
use secrecy::SecretString;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tracing::Instrument;

use crate::broker_client::{BrokerClient, KeyRequest};
use crate::classify::{AttemptFailure, classify};
use crate::lease::KeyLease;
use crate::metrics::ActivityMetrics;
use crate::scope::{TtlSource, key_label, key_ttl};
use crate::stripe_client::{ProxyError, StripeClient};

/// The one endpoint a refund key may call.
pub const REFUND_ENDPOINT: &str = "POST /v1/refunds";
/// What a key that follows a `pending` refund may call: the broker lets it
/// read only refunds its label (the refund's activity) made.
pub const REFUND_READ_ENDPOINT: &str = "GET /v1/refunds/*";

/// How often an attempt heartbeats while it waits on Stripe: cancellation
/// reaches an activity only through heartbeat responses.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// The `key_id` an attempt of [`PaymentActivities::keyless_baseline`] reports: it had no key of its own.
const SHARED_KEY_ID: &str = "shared-secret";

/// Longest metadata value the broker keeps.
const METADATA_VALUE_LIMIT: usize = 500;

/// What the payment activities need: where each attempt's credential comes
/// from, the Stripe client, and limits.
#[derive(Debug)]
pub struct PaymentActivities {
    credentials: Credentials,
    pub(crate) stripe: StripeClient,
    pub(crate) max_ttl: Duration,
    pub(crate) metrics: Arc<ActivityMetrics>,
    /// How long a compensation may go on before its refund attempts count as overdue.
    pub(crate) overdue_after: Duration,
    /// Whether `reconcile` may confirm a search with Stripe's list (the
    /// worker's role allows `GET /v1/payment_intents`).
    pub(crate) list_reads: bool,
    /// Whether a `pending` refund may be followed (the worker's role allows
    /// `GET /v1/refunds/*`).
    pub(crate) refund_reads: bool,
}

/// [`PaymentActivities::overdue_after`]'s default: fifteen minutes.
pub const DEFAULT_REFUND_OVERDUE_AFTER: Duration = Duration::from_secs(15 * 60);

/// Where an attempt's Stripe credential comes from.
#[derive(Debug)]
enum Credentials {
    /// A key of its own from the broker, revoked when the attempt ends: Keylease.
    Leased {
        broker: BrokerClient,
        revoke_budget: Duration,
    },
    /// One Stripe secret shared by every attempt, as agent backends do
    /// without Keylease: only the benchmark's baseline uses it.
    Shared(SecretString),
}

impl PaymentActivities {
    /// Activities over `broker` and `stripe`; keys live at most `max_ttl`
    /// (the broker's maximum), revocation retries for `revoke_budget`.
    pub fn new(
        broker: BrokerClient,
        stripe: StripeClient,
        max_ttl: Duration,
        revoke_budget: Duration,
    ) -> Self {
        Self {
            credentials: Credentials::Leased {
                broker,
                revoke_budget,
            },
            stripe,
            max_ttl,
            metrics: Arc::default(),
            overdue_after: DEFAULT_REFUND_OVERDUE_AFTER,
            list_reads: true,
            refund_reads: true,
        }
    }

    /// The same activities without Keylease: every attempt calls `stripe`
    /// (Stripe itself, not the proxy) with one shared `secret`, and issues and
    /// revokes nothing. This is what Keylease replaces; it exists only so
    /// `keylease-bench` can measure what per-attempt keys cost against it.
    /// The worker binary never builds it. Its order check reads the whole
    /// account's list: more than ten pages of any orders' PaymentIntents in
    /// the window, and it relies on search (docs/checkout-workflow.md).
    pub fn keyless_baseline(stripe: StripeClient, secret: SecretString, max_ttl: Duration) -> Self {
        Self {
            credentials: Credentials::Shared(secret),
            stripe,
            max_ttl,
            metrics: Arc::default(),
            overdue_after: DEFAULT_REFUND_OVERDUE_AFTER,
            list_reads: true,
            refund_reads: true,
        }
    }

    /// The activities' metrics, to register with a Prometheus registry.
    pub fn metrics(&self) -> Arc<ActivityMetrics> {
        self.metrics.clone()
    }

    /// The same, with `reconcile` on Stripe's search alone (and its search
    /// window), for a broker role made before it read Stripe's list: its
    /// keys would be refused at issue.
    pub fn without_list_reads(mut self) -> Self {
        self.list_reads = false;
        self
    }

    /// The same, for a broker role made before refunds were followed: a
    /// `pending` refund is answered as it stands, never read again.
    pub fn without_refund_reads(mut self) -> Self {
        self.refund_reads = false;
        self
    }

    /// The same, counting a refund attempt as overdue once its
    /// compensation began longer than `after` ago.
    pub fn overdue_after(mut self, after: Duration) -> Self {
        self.overdue_after = after;
        self
    }
}

/// Who is asking: the attempt's identity, as labels, metadata and idempotency keys need it.
pub(crate) struct Attempt {
    pub(crate) workflow_id: String,
    pub(crate) activity_id: String,
    pub(crate) attempt: u32,
    ttl_seconds: u64,
    metadata: BTreeMap<String, String>,
}

impl Attempt {
    pub(crate) fn of(
        ctx: &ActivityContext,
        input_schedule_to_close_ms: Option<u64>,
        max_ttl: Duration,
    ) -> Self {
        let info = ctx.info();
        let workflow_id = info
            .workflow_id
            .clone()
            .unwrap_or_else(|| "standalone".to_owned());
        let schedule_to_close = header_millis(ctx)
            .or(input_schedule_to_close_ms)
            .map(Duration::from_millis);
        let until_deadline = info
            .deadline
            .and_then(|d| d.duration_since(SystemTime::now()).ok());
        let ttl = key_ttl(schedule_to_close, until_deadline, max_ttl);
        if ttl.source != TtlSource::ScheduleToClose {
            tracing::warn!(
                workflow_id = %workflow_id, activity_id = %info.activity_id, source = ?ttl.source, ttl_seconds = ttl.seconds,
                "no schedule-to-close timeout given (header {SCHEDULE_TO_CLOSE_HEADER} or input schedule_to_close_ms); key TTL from the attempt's deadline"
            );
        }
        if ttl.clamped {
            tracing::warn!(workflow_id = %workflow_id, activity_id = %info.activity_id, ttl_seconds = ttl.seconds, "key TTL cut to the broker's maximum");
        }
        let mut metadata = BTreeMap::from([
            (
                "run_id".to_owned(),
                info.workflow_run_id.clone().unwrap_or_default(),
            ),
            ("attempt".to_owned(), info.attempt.to_string()),
            ("activity_type".to_owned(), info.activity_type.clone()),
            // `keys sweep` judges only keys of the namespace it runs against.
            ("namespace".to_owned(), info.namespace.clone()),
        ]);
        // Exact ids for `keys sweep` (a label is percent-encoded and ambiguous),
        // within the broker's 500-character limit on metadata values.
        for (name, value) in [
            ("workflow_id", &workflow_id),
            ("activity_id", &info.activity_id),
        ] {
            if value.len() <= METADATA_VALUE_LIMIT {
                metadata.insert(name.to_owned(), value.clone());
            }
        }
        Self {
            workflow_id,
            activity_id: info.activity_id.clone(),
            attempt: info.attempt,
            ttl_seconds: ttl.seconds,
            metadata,
        }
    }

    pub(crate) fn key_request(
        &self,
        daily_usd_cap: f64,
        allowed_endpoints: &[&str],
        allowed_objects: Vec<String>,
    ) -> KeyRequest {
        KeyRequest {
            label: key_label(&self.workflow_id, &self.activity_id),
            vendor: "stripe".to_owned(),
            daily_usd_cap,
            allowed_endpoints: allowed_endpoints.iter().map(|e| (*e).to_owned()).collect(),
            expires_in: self.ttl_seconds,
            metadata: self.metadata.clone(),
            allowed_objects,
            allowed_metadata: BTreeMap::new(),
        }
    }
}

/// The header's milliseconds: a JSON number, or a JSON string of digits.
fn header_millis(ctx: &ActivityContext) -> Option<u64> {
    let payload = ctx.headers().get(SCHEDULE_TO_CLOSE_HEADER)?;
    match serde_json::from_slice::<serde_json::Value>(&payload.data).ok()? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Runs `call` to its end, heartbeating meanwhile. A cancellation (of the
/// activity, or of the worker at shutdown) does not drop it: a request may
/// already be at Stripe, which carries it out whether or not anyone still
/// listens, and dropping it would leave its outcome unknown. The attempt's
/// deadline bounds it; after that the next attempt sends the same request
/// with the same idempotency key, and Stripe replays what it did.
async fn finish<T>(
    ctx: &ActivityContext,
    call: impl Future<Output = Result<T, AttemptFailure>>,
) -> Result<T, AttemptFailure> {
    let remaining = ctx
        .info()
        .deadline
        .map(|d| d.duration_since(SystemTime::now()).unwrap_or_default());
    let bounded = async {
        match remaining {
            Some(remaining) => tokio::time::timeout(remaining, call)
                .await
                .unwrap_or_else(|_| {
                    Err(AttemptFailure::Call(ProxyError::Transport {
                        message: "the attempt's deadline passed before the call ended".to_owned(),
                    }))
                }),
            None => call.await,
        }
    };
    tokio::pin!(bounded);
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut cancel_seen = false;
    loop {
        tokio::select! {
            result = &mut bounded => return result,
            () = ctx.cancelled(), if !cancel_seen => {
                cancel_seen = true;
                tracing::info!("cancellation requested: finishing the call already made, within the attempt's deadline");
            }
            _ = beat.tick() => {
                if let Err(err) = ctx.record_heartbeat(()).await {
                    tracing::debug!(error = %err, "heartbeat not recorded");
                }
            }
        }
    }
}

impl PaymentActivities {
    /// The broker that leases the keys (`None`: the keyless baseline).
    pub(crate) fn leasing_broker(&self) -> Option<&BrokerClient> {
        match &self.credentials {
            Credentials::Leased { broker, .. } => Some(broker),
            Credentials::Shared(_) => None,
        }
    }

    /// Issues a key for `request`, runs `call` with its token to its end
    /// (see [`finish`]), and revokes the key however the call ended. The
    /// keyless baseline runs `call` with its shared secret instead.
    pub(crate) async fn with_key<T, F, Fut>(
        &self,
        ctx: &ActivityContext,
        request: KeyRequest,
        call: F,
    ) -> Result<(T, String), ActivityError>
    where
        F: FnOnce(SecretString) -> Fut,
        Fut: Future<Output = Result<T, AttemptFailure>>,
    {
        let info = ctx.info();
        let attempt_number = info.attempt;
        // Every line of the attempt carries who it is for, and its key once issued.
        let span = tracing::info_span!(
            "attempt",
            workflow_id = %info.workflow_id.as_deref().unwrap_or("-"),
            activity_id = %info.activity_id,
            attempt = info.attempt,
            key_id = tracing::field::Empty,
            label = tracing::field::Empty,
        );
        let attempt = async {
            let (token, lease) = match &self.credentials {
                Credentials::Leased {
                    broker,
                    revoke_budget,
                } => {
                    crate::lease::revoke_predecessors(broker, &request, attempt_number).await;
                    let lease =
                        KeyLease::issue(broker, &request, self.metrics.clone(), *revoke_budget)
                            .await
                            .map_err(|err| {
                                classify(&AttemptFailure::KeyIssue(err), attempt_number)
                            })?;
                    let current = tracing::Span::current();
                    current.record("key_id", lease.id());
                    current.record("label", lease.label());
                    tracing::info!(ttl_seconds = lease.ttl().num_seconds(), "key issued");
                    (lease.token().clone(), Some(lease))
                }
                Credentials::Shared(secret) => (secret.clone(), None),
            };
            let key_id = lease
                .as_ref()
                .map_or(SHARED_KEY_ID, |lease| lease.id())
                .to_owned();
            let outcome = finish(ctx, call(token)).await.map_err(|failure| {
                tracing::warn!(failure = ?failure, "attempt failed");
                classify(&failure, attempt_number)
            });
            if let Some(lease) = lease {
                lease.revoke().await;
            }
            outcome.map(|value| (value, key_id))
        };
        attempt.instrument(span).await
    }
}

// Each `allow(missing_docs)` below is copied by the macro onto the constant
// it generates for the method, which cannot carry docs of its own.
#[activities]
impl PaymentActivities {
    /// Creates and confirms a PaymentIntent with a key that may create, read
    /// and cancel PaymentIntents and move this charge's money, nothing more;
    /// follows it until it holds the money or never will (see [`crate::charge`]).
    #[allow(missing_docs)]
    #[activity(name = "charge")]
    pub async fn charge(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ChargeInput,
    ) -> Result<ChargeOutput, ActivityError> {
        let result = self.charge_attempt(&ctx, input).await;
        self.metrics.record_outcome("charge", &result);
        result
    }

    /// Refunds a PaymentIntent with a key that may only create refunds.
    #[allow(missing_docs)]
    #[activity(name = "refund")]
    pub async fn refund(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RefundInput,
    ) -> Result<RefundOutput, ActivityError> {
        let result = self.refund_attempt(&ctx, input).await;
        self.metrics.record_outcome("refund", &result);
        result
    }

    /// Looks up, with a read-only key, what a checkout's charge did at Stripe
    /// (see [`crate::reconcile`]).
    #[allow(missing_docs)]
    #[activity(name = "reconcile")]
    pub async fn reconcile(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ReconcileInput,
    ) -> Result<ReconcileOutput, ActivityError> {
        let result = self.reconcile_attempt(&ctx, input).await;
        self.metrics.record_outcome("reconcile", &result);
        result
    }
}
