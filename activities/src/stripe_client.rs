//! Stripe, reached only through the broker's proxy with a vault key.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

/// The Stripe API version every request pins (`Stripe-Version`), so that
/// Stripe's behaviour does not follow the account's default version.
pub const STRIPE_API_VERSION: &str = "2026-10-28.endive";

/// Stripe's error object, as far as retry decisions need it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StripeErrorBody {
    /// `card_error`, `invalid_request_error`, `idempotency_error`, `api_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// e.g. `card_declined`.
    #[serde(default)]
    pub code: Option<String>,
    /// The issuer's reason, for card errors.
    #[serde(default)]
    pub decline_code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
}

/// Why a proxied Stripe call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The broker refused or failed the request itself (its error has a `code`, no `type`).
    #[error("broker refused the call ({status} {code}): {message}")]
    Broker {
        /// HTTP status.
        status: u16,
        /// The broker's error code, e.g. `cap_exhausted`.
        code: String,
        /// The broker's message.
        message: String,
    },
    /// Stripe answered with an error.
    #[error("stripe answered {status} {}: {}", .error.kind, .error.message.as_deref().unwrap_or(""))]
    Stripe {
        /// HTTP status.
        status: u16,
        /// Stripe's error object.
        error: StripeErrorBody,
        /// The `Stripe-Should-Retry` header, when sent.
        should_retry: Option<bool>,
        /// The `Retry-After` header, when sent.
        retry_after: Option<Duration>,
    },
    /// No usable answer: a timeout, a dropped connection, or a body that is not Stripe's.
    #[error("no answer from the proxy: {message}")]
    Transport {
        /// What went wrong (no URL, no token).
        message: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    error: serde_json::Value,
}

/// Calls Stripe's API through the broker's proxy (`…/stripe`).
#[derive(Debug, Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    proxy_base: Url,
}

impl StripeClient {
    /// A client for the proxy at `proxy_base`, e.g. `http://127.0.0.1:8080/stripe`,
    /// trusting `roots` for its certificate besides the usual web roots.
    pub fn new(
        proxy_base: Url,
        timeout: Duration,
        roots: &[reqwest::Certificate],
    ) -> Result<Self, reqwest::Error> {
        let http = crate::broker_http(&proxy_base, timeout, roots)?;
        Ok(Self { http, proxy_base })
    }

    /// A form-encoded POST with an idempotency key, answered by a Stripe object.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<T, ProxyError> {
        let url = crate::broker_client::url_below(&self.proxy_base, path);
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .header("Stripe-Version", STRIPE_API_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(transport)?;
        read(response).await
    }

    /// A GET with query parameters, answered by a Stripe object.
    pub async fn get<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ProxyError> {
        let url = crate::broker_client::url_below(&self.proxy_base, path);
        let response = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(token.expose_secret())
            .header("Stripe-Version", STRIPE_API_VERSION)
            .send()
            .await
            .map_err(transport)?;
        read(response).await
    }
}

/// The Stripe object of a 2xx answer, or the error of any other.
async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ProxyError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|err| ProxyError::Transport {
            message: format!("unreadable Stripe object: {err}"),
        });
    }
    Err(error_of(status.as_u16(), &headers, &body))
}

fn transport(err: reqwest::Error) -> ProxyError {
    ProxyError::Transport {
        message: err.without_url().to_string(),
    }
}

/// The header this project's broker puts on every answer it refused itself.
const BROKER_ERROR_HEADER: &str = "keylease-error";

/// Tells the broker's errors from Stripe's: the broker's carry a
/// `Keylease-Error` header (its errors are Stripe-shaped, with a `type`,
/// for Stripe's libraries); a broker without it (a hosted one) answers
/// `{"error":{"code","message"}}` without the `type` Stripe's always carry.
fn error_of(status: u16, headers: &HeaderMap, body: &[u8]) -> ProxyError {
    let Ok(Envelope { error }) = serde_json::from_slice::<Envelope>(body) else {
        return ProxyError::Transport {
            message: format!("status {status} with a body that is not an API error"),
        };
    };
    let from_broker = headers.contains_key(BROKER_ERROR_HEADER) || error.get("type").is_none();
    if !from_broker {
        let should_retry = headers
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return ProxyError::Stripe {
            status,
            error: serde_json::from_value(error).unwrap_or_default(),
            should_retry,
            retry_after,
        };
    }
    let text = |field: &str| {
        error
            .get(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    ProxyError::Broker {
        status,
        code: text("code"),
        message: text("message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_broker_errors_from_stripe_errors() {
        let broker = error_of(
            429,
            &HeaderMap::new(),
            br#"{"error":{"code":"cap_exhausted","message":"over"}}"#,
        );
        assert!(
            matches!(broker, ProxyError::Broker { status: 429, ref code, .. } if code == "cap_exhausted")
        );
        // This broker's refusals are Stripe-shaped; its header tells them apart.
        let mut marked = HeaderMap::new();
        marked.insert(BROKER_ERROR_HEADER, "cap_exhausted".parse().unwrap());
        let shaped = error_of(
            429,
            &marked,
            br#"{"error":{"type":"invalid_request_error","code":"cap_exhausted","message":"over"}}"#,
        );
        assert!(
            matches!(shaped, ProxyError::Broker { status: 429, ref code, .. } if code == "cap_exhausted")
        );

        let mut headers = HeaderMap::new();
        headers.insert("stripe-should-retry", "false".parse().unwrap());
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let stripe = error_of(
            402,
            &headers,
            br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds"}}"#,
        );
        match stripe {
            ProxyError::Stripe {
                status,
                error,
                should_retry,
                retry_after,
            } => {
                assert_eq!(status, 402);
                assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
                assert_eq!(should_retry, Some(false));
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_of(502, &HeaderMap::new(), b"<html>"),
            ProxyError::Transport { .. }
        ));
    }
}
