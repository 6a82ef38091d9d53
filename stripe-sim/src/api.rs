//! The Stripe endpoints, and the order every request goes through:
//! record → authenticate → route → parse → claim the idempotency key →
//! staged fault → validate → execute → save the answer for the key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

use crate::account::Account;
use crate::error::StripeError;
use crate::faults::FaultKind;
use crate::idempotency::Claim;
use crate::params::Params;
use crate::payment_intents::{self, NewPaymentIntent};
use crate::refunds::{self, NewRefund};
use crate::response::SimResponse;
use crate::server::ConnectionKill;
use crate::state::{RecordedRequest, Sim};

/// Largest body read.
const BODY_LIMIT: usize = 1024 * 1024;

/// A Stripe endpoint the simulator serves, with the id in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    CreatePaymentIntent,
    RetrievePaymentIntent(String),
    ConfirmPaymentIntent(String),
    CapturePaymentIntent(String),
    CancelPaymentIntent(String),
    CreateRefund,
    RetrieveRefund(String),
    RetrieveCharge(String),
}

impl Endpoint {
    fn route(method: &Method, path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let id = |s: &str| s.to_owned();
        let endpoint = match (method.as_str(), segments.as_slice()) {
            ("POST", ["v1", "payment_intents"]) => Self::CreatePaymentIntent,
            ("GET", ["v1", "payment_intents", pi]) => Self::RetrievePaymentIntent(id(pi)),
            ("POST", ["v1", "payment_intents", pi, "confirm"]) => {
                Self::ConfirmPaymentIntent(id(pi))
            }
            ("POST", ["v1", "payment_intents", pi, "capture"]) => {
                Self::CapturePaymentIntent(id(pi))
            }
            ("POST", ["v1", "payment_intents", pi, "cancel"]) => Self::CancelPaymentIntent(id(pi)),
            ("POST", ["v1", "refunds"]) => Self::CreateRefund,
            ("GET", ["v1", "refunds", re]) => Self::RetrieveRefund(id(re)),
            ("GET", ["v1", "charges", ch]) => Self::RetrieveCharge(id(ch)),
            _ => return None,
        };
        Some(endpoint)
    }
}

/// A request that passed validation, ready to execute.
enum Command {
    CreatePaymentIntent(NewPaymentIntent),
    RetrievePaymentIntent(String),
    ConfirmPaymentIntent(String, Option<String>),
    CapturePaymentIntent(String, Option<i64>),
    CancelPaymentIntent(String, Option<String>),
    CreateRefund(NewRefund),
    RetrieveRefund(String),
    RetrieveCharge(String),
}

impl Command {
    /// Parameter checks that need no state: failures here are never saved for a key.
    fn validate(endpoint: Endpoint, params: &Params) -> Result<Self, StripeError> {
        Ok(match endpoint {
            Endpoint::CreatePaymentIntent => {
                Self::CreatePaymentIntent(payment_intents::validate_create(params)?)
            }
            Endpoint::ConfirmPaymentIntent(id) => {
                Self::ConfirmPaymentIntent(id, payment_intents::validate_confirm(params)?)
            }
            Endpoint::CapturePaymentIntent(id) => {
                Self::CapturePaymentIntent(id, payment_intents::validate_capture(params)?)
            }
            Endpoint::CancelPaymentIntent(id) => {
                Self::CancelPaymentIntent(id, payment_intents::validate_cancel(params)?)
            }
            Endpoint::CreateRefund => Self::CreateRefund(refunds::validate_create(params)?),
            Endpoint::RetrievePaymentIntent(id) => {
                params.allow_only(&[])?;
                Self::RetrievePaymentIntent(id)
            }
            Endpoint::RetrieveRefund(id) => {
                params.allow_only(&[])?;
                Self::RetrieveRefund(id)
            }
            Endpoint::RetrieveCharge(id) => {
                params.allow_only(&[])?;
                Self::RetrieveCharge(id)
            }
        })
    }

    fn execute(self, account: &mut Account, expand: &[String]) -> Result<Value, StripeError> {
        match self {
            Self::CreatePaymentIntent(new) => {
                let id = payment_intents::create(account, new)?;
                Ok(account.payment_intent_json(&id, expand))
            }
            Self::RetrievePaymentIntent(id) => payment_intents::retrieve(account, &id, expand),
            Self::ConfirmPaymentIntent(id, payment_method) => {
                payment_intents::confirm(account, &id, payment_method, expand)?;
                Ok(account.payment_intent_json(&id, expand))
            }
            Self::CapturePaymentIntent(id, amount) => {
                payment_intents::capture(account, &id, amount)?;
                Ok(account.payment_intent_json(&id, expand))
            }
            Self::CancelPaymentIntent(id, reason) => {
                payment_intents::cancel(account, &id, reason)?;
                Ok(account.payment_intent_json(&id, expand))
            }
            Self::CreateRefund(new) => {
                let id = refunds::create(account, new)?;
                refunds::retrieve(account, &id)
            }
            Self::RetrieveRefund(id) => refunds::retrieve(account, &id),
            Self::RetrieveCharge(id) => refunds::retrieve_charge(account, &id),
        }
    }
}

/// The secret key of the request: `Bearer sk_test_…`, or Basic with the key as user.
fn authenticate(headers: &HeaderMap) -> Result<String, StripeError> {
    let missing = || {
        StripeError::authentication(
            "You did not provide an API key. Provide it in the Authorization header as Bearer sk_test_….",
        )
    };
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, credentials) = value.split_once(' ').ok_or_else(missing)?;
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .map_err(|_| missing())?;
        let text = String::from_utf8(decoded).map_err(|_| missing())?;
        text.split(':').next().unwrap_or_default().to_owned()
    } else {
        return Err(missing());
    };
    match key.strip_prefix("sk_test_") {
        Some(rest) if !rest.is_empty() => Ok(key),
        // Like Stripe, name only the key's edges.
        _ if key.starts_with("sk_live_") => Err(StripeError::authentication(
            "stripe-sim accepts test keys (sk_test_…) only.",
        )),
        _ => {
            let tail: String = key
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(StripeError::authentication(format!(
                "Invalid API Key provided: ****{tail}"
            )))
        }
    }
}

fn record(request: &axum::http::request::Parts, body: &[u8]) -> RecordedRequest {
    let mut headers = std::collections::BTreeMap::<String, String>::new();
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    RecordedRequest {
        method: request.method.to_string(),
        path: request.uri.path().to_owned(),
        query: request.uri.query().map(str::to_owned),
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// Closes the connection unanswered; without the simulator's own server that cannot be done.
async fn drop_connection(kill: Option<ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.kill();
            std::future::pending().await
        }
        None => SimResponse::new(
            500,
            serde_json::json!({"error": {"type": "api_error",
            "message": "drop faults need the connection-level server of stripe_sim::run"}}),
        )
        .into_response(),
    }
}

/// Handles every request outside `/_sim`.
pub async fn stripe(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let kill = parts.extensions.get::<ConnectionKill>().cloned();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return StripeError::invalid("body", "Request body could not be read or is over 1 MiB.")
            .response()
            .into_response();
    };
    sim.record(record(&parts, &body));
    let response = answer(&sim, &parts, &body, kill).await;
    tracing::info!(method = %parts.method, path = %parts.uri.path(), status = response.status().as_u16(), "stripe request");
    response
}

async fn answer(
    sim: &Arc<Sim>,
    parts: &axum::http::request::Parts,
    body: &[u8],
    kill: Option<ConnectionKill>,
) -> Response {
    let secret = match authenticate(&parts.headers) {
        Ok(secret) => secret,
        Err(err) => return err.response().into_response(),
    };
    let path = parts.uri.path();
    let Some(endpoint) = Endpoint::route(&parts.method, path) else {
        return StripeError::unrecognized_url(parts.method.as_str(), path)
            .response()
            .into_response();
    };
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    // Stripe reads GET parameters from the query and POST ones from a form body; a JSON body is not read.
    let params = match parts.method {
        Method::GET => Params::parse(parts.uri.query().unwrap_or("").as_bytes()),
        _ if is_form => Params::parse(body),
        _ => Params::default(),
    };
    let expand = params.expand();

    let idempotency_key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let claim = match (&parts.method, idempotency_key) {
        (&Method::POST, Some(key)) => {
            let fingerprint = format!("{} {path} {}", parts.method, params.fingerprint());
            match sim.claim(&secret, key, &fingerprint) {
                Claim::Fresh(guard) => Some(guard),
                Claim::Replay(saved) => return saved.into_response(),
                Claim::Mismatch => {
                    return StripeError::idempotency_mismatch()
                        .response()
                        .into_response();
                }
                Claim::InFlight => {
                    return StripeError::idempotency_in_flight()
                        .response()
                        .into_response();
                }
            }
        }
        _ => None,
    };

    let mut drop_after_commit = false;
    if let Some(fault) = sim.take_fault(parts.method.as_str(), path) {
        tracing::info!(fault = fault.id, kind = ?fault.spec.kind, %path, "staged fault applied");
        match fault.spec.kind {
            FaultKind::Delay => tokio::time::sleep(fault.delay()).await,
            FaultKind::Status => {
                let status = fault.spec.status.unwrap_or(500);
                let mut response = SimResponse::new(
                    status,
                    serde_json::json!({"error": {"type": if status >= 500 { "api_error" } else { "invalid_request_error" },
                        "message": format!("stripe-sim staged fault {}", fault.id)}}),
                );
                response.should_retry = fault.spec.should_retry;
                response.retry_after = fault.spec.retry_after;
                return response.into_response();
            }
            FaultKind::DropBeforeCommit => return drop_connection(kill).await,
            FaultKind::DropAfterCommit => drop_after_commit = true,
        }
    }

    let command = match Command::validate(endpoint, &params) {
        Ok(command) => command,
        Err(err) => return err.response().into_response(),
    };
    let response = match sim.with_account(&secret, |account| command.execute(account, &expand)) {
        Ok(body) => SimResponse::ok(body),
        Err(err) => err.response(),
    };
    if let Some(guard) = claim {
        guard.complete(&response);
    }
    if drop_after_commit {
        return drop_connection(kill).await;
    }
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_stripe_paths() {
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/payment_intents"),
            Some(Endpoint::CreatePaymentIntent)
        );
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/payment_intents/pi_1/capture"),
            Some(Endpoint::CapturePaymentIntent("pi_1".into()))
        );
        assert_eq!(
            Endpoint::route(&Method::GET, "/v1/charges/ch_1"),
            Some(Endpoint::RetrieveCharge("ch_1".into()))
        );
        assert_eq!(Endpoint::route(&Method::GET, "/v1/payment_intents"), None);
        assert_eq!(Endpoint::route(&Method::DELETE, "/v1/refunds/re_1"), None);
    }

    #[test]
    fn authenticates_bearer_and_basic_test_keys_only() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, value.parse().unwrap());
            h
        };
        assert_eq!(
            authenticate(&headers("Bearer sk_test_abc")).unwrap(),
            "sk_test_abc"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("sk_test_abc:");
        assert_eq!(
            authenticate(&headers(&format!("Basic {basic}"))).unwrap(),
            "sk_test_abc"
        );
        assert!(authenticate(&headers("Bearer sk_live_abc")).is_err());
        assert!(authenticate(&headers("Bearer vk_123")).is_err());
        assert!(authenticate(&HeaderMap::new()).is_err());
        let refused = authenticate(&headers("Bearer sk_wrong_secretvalue"))
            .unwrap_err()
            .response();
        assert!(
            !refused.body.to_string().contains("secretvalue"),
            "the key is never echoed whole"
        );
    }
}
