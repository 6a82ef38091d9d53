//! The broker's record of the order's PaymentIntents made since the
//! checkout began (`GET /v1/keys/self/objects`): read, each named one read
//! again through the proxy, and how far it answers.

use secrecy::SecretString;

use super::{Listed, unreadable};
use crate::broker_client::{BrokerClient, BrokerError};
use crate::classify::AttemptFailure;
use crate::stripe_client::{ProxyError, StripeClient};

/// How far the broker's record of the order's PaymentIntents made since answers.
pub(super) enum Reach {
    /// Every one made through the broker.
    Whole,
    /// Not whole, for a reason the list is read for; if the list cannot be
    /// read to its end either, the check relies on search, as without a
    /// record: a broker without it (a hosted one), one of an earlier
    /// release that made a PaymentIntent in the time (a rolling upgrade),
    /// or a create of the order's pair by a key that does not own it (a
    /// charge without the order check).
    Absent,
    /// Not whole because a create of the order may have made a payment the
    /// record does not hold (its outcome unknown), the order has more than
    /// it answers, or it could not be read: the list is read, and if it
    /// cannot be read to its end the check fails, retryable, unless what
    /// was read answers (an earlier payment, or this checkout's own) —
    /// never left to search alone.
    Unsure(String),
}

/// What the broker's record said: the order's PaymentIntents it holds
/// (each read again through the proxy with its latest charge's refunds,
/// whole or not: a payment among them answers either way), and how far.
pub(super) struct FromRecord {
    pub(super) found: Vec<Listed>,
    pub(super) reach: Reach,
}

impl FromRecord {
    pub(super) fn absent() -> Self {
        Self {
            found: Vec::new(),
            reach: Reach::Absent,
        }
    }
}

/// The broker's record of the order's PaymentIntents made since `since`
/// (Unix seconds): every one made through a broker of its database, when
/// whole (issue 24: what the list was read for, without scanning a busy
/// account's). A create sent with `own_key` (this charge's idempotency key:
/// an earlier attempt's, which this one's create replays) still pending
/// does not count against it.
pub(super) async fn recorded(
    stripe: &StripeClient,
    broker: &BrokerClient,
    token: &SecretString,
    since: u64,
    own_key: &str,
) -> Result<FromRecord, AttemptFailure> {
    let record = match broker.recorded(token, since, Some(own_key)).await {
        Ok(Some(record)) => record,
        // A broker that does not know the call (a hosted one; 405 from some).
        Ok(None) | Err(BrokerError::Rejected { status: 405, .. }) => {
            tracing::warn!(
                "the broker keeps no record of the order's PaymentIntents (404/405): Stripe's list is read instead"
            );
            return Ok(FromRecord::absent());
        }
        Err(err) => {
            tracing::warn!(error = %err, "the broker's record of the order could not be read: Stripe's list is read instead");
            return Ok(FromRecord {
                found: Vec::new(),
                reach: Reach::Unsure(format!("the broker's record could not be read ({err})")),
            });
        }
    };
    let reach = match (record.complete, record.incomplete.as_deref()) {
        (true, _) => Reach::Whole,
        // Creates the record cannot hold (a broker that records nothing, a
        // key without allowed_metadata): as without a record.
        (false, Some("earlier_release" | "unowned")) => Reach::Absent,
        (false, why) => Reach::Unsure(format!(
            "the broker's record is not whole ({})",
            why.unwrap_or("no reason given")
        )),
    };
    let mut found = Vec::with_capacity(record.data.len());
    for object in record.data {
        // An id that is not one path segment would read another object.
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if object.id.is_empty() || !object.id.bytes().all(plain) {
            return Err(AttemptFailure::OrderUnread(format!(
                "the broker's record names {:?}, not a PaymentIntent id",
                object.id
            )));
        }
        let read: Listed = match stripe
            .get(
                token,
                &format!("/v1/payment_intents/{}", object.id),
                &[("expand[]", "latest_charge.refunds")],
            )
            .await
        {
            Ok(read) => read,
            // Its metadata is no longer the order's: not the order's now,
            // as Stripe's list would not show it to this key either.
            Err(ProxyError::Broker { code, .. }) if code == "object_not_allowed" => continue,
            Err(err) => return Err(unreadable(err)),
        };
        if read.id != object.id {
            return Err(AttemptFailure::OrderUnread(format!(
                "reading PaymentIntent {} answered {}",
                object.id, read.id
            )));
        }
        found.push(read);
    }
    Ok(FromRecord { found, reach })
}
