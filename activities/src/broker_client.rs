//! The key broker's vault-key API: issue and revoke.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// Why the broker did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Not reached, timed out, or failed (5xx): worth retrying.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Refused the request (4xx), with its error code and message.
    #[error("broker refused the request ({status} {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The broker's error code.
        code: String,
        /// The broker's message.
        message: String,
    },
}

/// A key request, as `POST /v1/keys` takes it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRequest {
    /// `temporal-<workflowId>-<activityId>`.
    pub label: String,
    /// `stripe`.
    pub vendor: String,
    /// Daily spend cap in USD.
    pub daily_usd_cap: f64,
    /// `METHOD PATH` entries.
    pub allowed_endpoints: Vec<String>,
    /// Whole seconds.
    pub expires_in: u64,
    /// Run id, attempt and activity type.
    pub metadata: BTreeMap<String, String>,
    /// Objects the key may name besides those it creates (a refund's PaymentIntent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_objects: Vec<String>,
    /// Objects whose Stripe metadata holds all these pairs are visible to
    /// the key in lists and searches (how reconcile finds the charge's PaymentIntent).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub allowed_metadata: BTreeMap<String, String>,
}

/// An issued key. Its token never prints.
#[derive(Debug, Deserialize)]
pub struct IssuedKey {
    /// `key_…`.
    pub id: String,
    /// The vault token; `Debug` shows it redacted.
    pub token: SecretString,
    /// As requested.
    pub label: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// A key as `GET /v1/keys` lists it (never with its token).
#[derive(Debug, Clone, Deserialize)]
pub struct KeySummary {
    /// `key_…`.
    pub id: String,
    /// Its label.
    pub label: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    /// The issuer's string pairs (Keylease's: `workflow_id`, `run_id`, `activity_id`, …).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct KeyList {
    keys: Vec<KeySummary>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// What the broker's record holds for a key's metadata pairs
/// ([`BrokerClient::recorded`]).
#[derive(Debug, Clone, Deserialize)]
pub struct Recorded {
    /// The objects, each by id.
    pub data: Vec<RecordedObject>,
    /// Whether those are all of them.
    pub complete: bool,
    /// Why not, when not: `pending` (a create of the pairs whose outcome the
    /// broker never learnt), `earlier_release` (a broker that records
    /// nothing made one in the time, or before recording began), `unowned`
    /// (a key that does not own the pair made one), `too_many`.
    #[serde(default)]
    pub incomplete: Option<String>,
}

/// One object of [`Recorded`].
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedObject {
    /// Its id.
    pub id: String,
}

/// A client of the broker's admin API, holding the broker token.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
}

impl BrokerClient {
    /// A client for the broker at `base` (e.g. `http://127.0.0.1:8080`),
    /// trusting `roots` for its certificate besides the usual web roots.
    pub fn new(
        base: Url,
        token: SecretString,
        timeout: Duration,
        roots: &[reqwest::Certificate],
    ) -> Result<Self, reqwest::Error> {
        let http = crate::broker_http(&base, timeout, roots)?;
        Ok(Self { http, base, token })
    }

    fn url(&self, path: &str) -> Url {
        url_below(&self.base, path)
    }

    /// `POST /v1/keys`.
    pub async fn issue(&self, request: &KeyRequest) -> Result<IssuedKey, BrokerError> {
        let response = self
            .http
            .post(self.url("/v1/keys"))
            .bearer_auth(self.token.expose_secret())
            .json(request)
            .send()
            .await
            .map_err(unavailable)?;
        let response = check(response).await?;
        response.json().await.map_err(unavailable)
    }

    /// `DELETE /v1/keys/{id}`; an unknown id counts as revoked.
    pub async fn revoke(&self, key_id: &str) -> Result<(), BrokerError> {
        let response = self
            .http
            .delete(self.url(&format!("/v1/keys/{key_id}")))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(unavailable)?;
        match check(response).await {
            Err(BrokerError::Rejected { status: 404, .. }) | Ok(_) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `GET /v1/keys?label_prefix=…&status=…&limit=1000`: at most 1000 keys, newest first.
    pub async fn list_keys(
        &self,
        label_prefix: &str,
        status: &str,
    ) -> Result<Vec<KeySummary>, BrokerError> {
        let response = self
            .http
            .get(self.url("/v1/keys"))
            .query(&[
                ("label_prefix", label_prefix),
                ("status", status),
                ("limit", "1000"),
            ])
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(unavailable)?;
        let list: KeyList = check(response).await?.json().await.map_err(unavailable)?;
        Ok(list.keys)
    }

    /// `GET /v1/whoami`: which kind of token this client holds
    /// (`{"kind": "admin"}`, or `{"kind": "role", "role": {…}}`).
    pub async fn whoami(&self) -> Result<serde_json::Value, BrokerError> {
        let response = self
            .http
            .get(self.url("/v1/whoami"))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(unavailable)?;
        check(response).await?.json().await.map_err(unavailable)
    }

    /// `POST path` with a JSON body (an admin call: `/v1/roles`, …); the answer's JSON.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, BrokerError> {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(unavailable)?;
        check(response).await?.json().await.map_err(unavailable)
    }

    /// `GET /v1/keys/self/objects?object=payment_intent&created_since=…`
    /// with the vault key `key_token` (never this client's own token): the
    /// PaymentIntents made through the broker with every metadata pair of
    /// that key's `allowed_metadata`, made since `since` (Unix seconds); an
    /// earlier create of the key's label sent with `own_idempotency_key`
    /// (the one the caller's create sends again), still pending, does not
    /// make it incomplete. `None` from a broker without the record (a
    /// hosted one: 404).
    pub async fn recorded(
        &self,
        key_token: &SecretString,
        since: u64,
        own_idempotency_key: Option<&str>,
    ) -> Result<Option<Recorded>, BrokerError> {
        let since = since.to_string();
        let mut query = vec![("object", "payment_intent"), ("created_since", &since)];
        if let Some(key) = own_idempotency_key {
            query.push(("own_idempotency_key", key));
        }
        let response = self
            .http
            .get(self.url("/v1/keys/self/objects"))
            .query(&query)
            .bearer_auth(key_token.expose_secret())
            .send()
            .await
            .map_err(unavailable)?;
        match check(response).await {
            Ok(response) => response.json().await.map(Some).map_err(unavailable),
            Err(BrokerError::Rejected { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /healthz`: whether the broker answers at all, within `timeout`.
    pub async fn health(&self, timeout: Duration) -> Result<(), BrokerError> {
        let response = self
            .http
            .get(self.url("/healthz"))
            .timeout(timeout)
            .send()
            .await
            .map_err(unavailable)?;
        check(response).await.map(drop)
    }
}

/// `path` under `base`'s own path: `http://h/x` and `/v1/keys` give `http://h/x/v1/keys`.
pub(crate) fn url_below(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let base_path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base_path}{path}"));
    url
}

/// The error and its causes on one line (an untrusted certificate is a
/// cause of "error sending request"), without the URL.
fn unavailable(err: reqwest::Error) -> BrokerError {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    BrokerError::Unavailable(text)
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, BrokerError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.is_server_error() {
        return Err(BrokerError::Unavailable(format!("status {status}")));
    }
    let body = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => (error.code, error.message),
        Err(_) => ("unknown".to_owned(), format!("status {status}")),
    };
    Err(BrokerError::Rejected {
        status: status.as_u16(),
        code,
        message,
    })
}
