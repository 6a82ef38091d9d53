//! Keylease's payment activities.
//!
//! Each attempt of `charge` or `refund` issues its own short-lived key from
//! the broker (labelled `temporal-<workflowId>-<activityId>`, TTL
//! schedule_to_close × 1.2, scoped to the endpoints and spend it needs),
//! calls Stripe only through the broker's proxy with it, and revokes it
//! however the attempt ends. The Stripe secret never reaches this crate.
//!
//! Modules:
//! - [`payments`]: [`PaymentActivities`], the `charge`, `refund` and `reconcile` activities.
//! - [`charge`]: one charge attempt, and what each PaymentIntent status means for it.
//! - [`refund`]: one refund attempt, and the read of a refund Stripe answered `pending`.
//! - [`reconcile`]: one reconcile attempt, which looks a checkout's charge up in Stripe's search.
//! - [`order`]: whether an order is already paid by another checkout, read before a charge.
//! - [`search`]: Stripe's search of PaymentIntents, read to its end.
//! - [`lease`]: [`lease::KeyLease`], one attempt's key and its revocation.
//! - [`standing`]: what a PaymentIntent's status says of the money.
//! - [`scope`]: key labels, TTLs and Stripe idempotency keys.
//! - [`classify`]: the one mapping from failures to Temporal retry semantics.
//! - [`validate`]: input checks made before any key is issued.
//! - [`metrics`]: keys issued and revoked, latencies, outcomes.
//! - [`broker_client`], [`stripe_client`]: the HTTP clients of the broker and of Stripe via the proxy.

pub mod broker_client;
pub mod charge;
pub mod classify;
pub mod lease;
pub mod metrics;
pub mod needs;
pub mod order;
pub mod payments;
pub mod reconcile;
pub mod refund;
pub mod scope;
pub mod search;
pub mod standing;
pub mod stripe_client;
pub mod validate;

pub use broker_client::{BrokerClient, BrokerError};
pub use payments::PaymentActivities;
pub use stripe_client::StripeClient;

/// How long an idle connection to the broker is kept for reuse: under the
/// broker's default header timeout (10 s), after which it closes idle ones.
pub const BROKER_IDLE_CONNECTION: std::time::Duration = std::time::Duration::from_secs(5);

/// The HTTP client of the broker's key API and of its proxy at `base`,
/// trusting `roots` besides the usual web roots (a private CA of the
/// broker's). A plain `http://` broker is never reached through a proxy
/// from the environment (`HTTP_PROXY`, `ALL_PROXY`): its token would cross
/// it in clear text; an `https://` one may be, end to end through it. The
/// broker closes a connection idle for its header timeout; dropping ours
/// sooner means a POST never races that close.
fn broker_http(
    base: &url::Url,
    timeout: std::time::Duration,
    roots: &[reqwest::Certificate],
) -> reqwest::Result<reqwest::Client> {
    let builder = roots
        .iter()
        .fold(reqwest::Client::builder(), |builder, root| {
            builder.add_root_certificate(root.clone())
        });
    let builder = if base.scheme() == "https" {
        builder
    } else {
        builder.no_proxy()
    };
    builder
        .timeout(timeout)
        .pool_idle_timeout(BROKER_IDLE_CONNECTION)
        .build()
}
