//! The order every Stripe request goes through: record → authenticate →
//! `Stripe-Version` → route → parse → claim the idempotency key → staged
//! fault → validate → execute → save the answer for the key.
//!
//! A request runs on its own task: once it has begun it finishes and commits
//! even if the client hangs up, as on Stripe, whose servers do not notice a
//! client that went away.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;

use crate::error::StripeError;
use crate::faults::FaultKind;
use crate::idempotency::Claim;
use crate::ids::new_id;
use crate::params::Params;
use crate::response::{SimResponse, Stamp};
use crate::routes::{Command, Endpoint};
use crate::server::ConnectionKill;
use crate::state::{RecordedAt, RecordedRequest, Sim};
use crate::version::ApiVersion;

/// Largest body read.
const BODY_LIMIT: usize = 1024 * 1024;

/// What the connection does with a request's outcome.
enum Reply {
    Send(SimResponse),
    /// Close the connection unanswered.
    Drop,
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
        _ if key.starts_with("sk_live_") => Err(StripeError::authentication(
            "stripe-sim accepts test keys (sk_test_…) only.",
        )),
        // Like Stripe, name only the key's last characters.
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

fn record(request: &Parts, body: &[u8]) -> RecordedRequest {
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
        received_at_ms: crate::state::machine_ms(),
        fault: None,
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
    let at = sim.record(record(&parts, &body));
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    // Its own task: dropping this handler (the client hung up) does not stop it.
    let reply = tokio::spawn(answer(sim, parts, body, at)).await;
    let response = match reply {
        Ok(Reply::Send(response)) => response.into_response(),
        Ok(Reply::Drop) => return drop_connection(kill).await,
        Err(err) => {
            tracing::error!(error = %err, "request task failed");
            StripeError::api_error("stripe-sim failed to answer.")
                .response()
                .into_response()
        }
    };
    tracing::info!(%method, %path, status = response.status().as_u16(), "stripe request");
    response
}

fn staged_status(fault_id: u64, status: u16) -> SimResponse {
    SimResponse::new(
        status,
        serde_json::json!({"error": {"type": if status >= 500 { "api_error" } else { "invalid_request_error" },
            "message": format!("stripe-sim staged fault {fault_id}")}}),
    )
}

/// Answers the request, with Stripe's headers about it on whatever it answers.
async fn answer(sim: Arc<Sim>, parts: Parts, body: Bytes, at: RecordedAt) -> Reply {
    let mut stamp = Stamp {
        request_id: Some(new_id("req")),
        version: Some(ApiVersion::default().to_string()),
        ..Stamp::default()
    };
    if parts.method == Method::POST {
        stamp.idempotency_key = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    match execute(sim, &parts, body, at, &mut stamp).await {
        Reply::Send(mut response) => {
            stamp.log_url(&mut response);
            response.stamp = stamp;
            Reply::Send(response)
        }
        Reply::Drop => Reply::Drop,
    }
}

async fn execute(
    sim: Arc<Sim>,
    parts: &Parts,
    body: Bytes,
    at: RecordedAt,
    stamp: &mut Stamp,
) -> Reply {
    let refuse = |err: StripeError| Reply::Send(err.response());
    let secret = match authenticate(&parts.headers) {
        Ok(secret) => secret,
        Err(err) => return refuse(err),
    };
    let version = parts
        .headers
        .get("stripe-version")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let version = match ApiVersion::from_header(version) {
        Ok(served) => {
            stamp.version = Some(served.version.to_string());
            stamp.warning = served.warning;
            served.version
        }
        Err(err) => return refuse(err),
    };
    let path = parts.uri.path();
    let Some(endpoint) = Endpoint::route(&parts.method, path) else {
        return refuse(StripeError::unrecognized_url(parts.method.as_str(), path));
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
        _ if is_form => Params::parse(&body),
        _ => Params::default(),
    };
    let ctx = sim.ctx(version);

    let idempotency_key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let claim = match (&parts.method, idempotency_key) {
        (&Method::POST, Some(key)) => {
            let fingerprint = format!("{} {path} {}", parts.method, params.fingerprint());
            Some(sim.claim(&secret, key, &fingerprint, ctx.now_ms))
        }
        _ => None,
    };

    // Faults apply to every matching request, replays and conflicts included.
    let mut drop_after = false;
    if let Some(fault) = sim.take_fault(at, parts.method.as_str(), path) {
        tracing::info!(fault = fault.id, kind = ?fault.spec.kind, %path, "staged fault applied");
        match fault.spec.kind {
            FaultKind::Delay => tokio::time::sleep(fault.delay()).await,
            FaultKind::Status => {
                let mut response = staged_status(fault.id, fault.spec.status.unwrap_or(500));
                response.should_retry = fault.spec.should_retry;
                response.retry_after = fault.spec.retry_after;
                return Reply::Send(response);
            }
            FaultKind::ErrorWhileExecuting => {
                let mut response = staged_status(fault.id, fault.spec.status.unwrap_or(500));
                // Stripe: a saved 500 would only replay, so retrying it is no use.
                response.should_retry = Some(false);
                stamp.log_url(&mut response);
                if let Some(Claim::Fresh(guard)) = claim {
                    guard.complete(&response);
                }
                return Reply::Send(response);
            }
            FaultKind::DropBeforeCommit => return Reply::Drop,
            FaultKind::DropAfterCommit => drop_after = true,
        }
    }
    let then = |response: SimResponse| {
        if drop_after {
            Reply::Drop
        } else {
            Reply::Send(response)
        }
    };

    let guard = match claim {
        None => None,
        Some(Claim::Fresh(guard)) => Some(guard),
        Some(Claim::Replay(saved)) => return then(saved),
        Some(Claim::Mismatch) => return then(StripeError::idempotency_mismatch().response()),
        Some(Claim::InFlight) => return then(StripeError::idempotency_in_flight().response()),
    };
    let command = match Command::validate(endpoint, params, &ctx) {
        Ok(command) => command,
        Err(err) => return refuse(err),
    };
    let mut response = match sim.with_account(&secret, |account| command.execute(account, &ctx)) {
        Ok(body) => SimResponse::ok(body),
        Err(err) => err.response(),
    };
    // Saved with the first request's log, as Stripe replays the whole body.
    stamp.log_url(&mut response);
    if let Some(guard) = guard {
        guard.complete(&response);
    }
    then(response)
}

#[cfg(test)]
mod tests {
    use super::*;

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
