//! Roles from the worker's side: the broker role its activities need, the
//! one-shot setup that creates it (the only step that holds the admin
//! token), the start check of which token the worker holds, and what
//! `policy explain` compares.

use std::time::Duration;

use clap::Args;
use keylease_activities::broker_client::{BrokerClient, BrokerError};
use keylease_activities::needs::endpoints;
use keylease_activities::scope::{LABEL_PREFIX, key_ttl};
use keylease_workflows::CheckoutPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use crate::error::WorkerError;

/// How long one admin call of the setup may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The role a worker's activities need: keys labelled `temporal-…`, the
/// endpoints they call, their TTL, a refund key's one PaymentIntent
/// (`allowed_objects`) and reconcile's checkout (`allowed_metadata`).
pub fn worker_role(
    name: &str,
    max_key_usd_cap: f64,
    daily_usd_cap: f64,
    max_ttl: Duration,
) -> Value {
    json!({
        "name": name,
        "vendor": "stripe",
        "label_prefix": LABEL_PREFIX,
        "allowed_endpoints": endpoints(),
        "max_key_usd_cap": max_key_usd_cap,
        "daily_usd_cap": daily_usd_cap,
        "max_expires_in": max_ttl.as_secs(),
        "allow_allowed_objects": true,
        "allow_allowed_metadata": true,
    })
}

/// Flags of `keylease-worker role setup`.
#[derive(Debug, Clone, Args)]
pub struct RoleSetupArgs {
    /// The broker's admin API.
    #[arg(long, env = "KEYLEASE_BROKER_URL")]
    pub broker_url: Url,
    /// How the broker is reached.
    #[command(flatten)]
    pub transport: crate::config::BrokerTransport,
    /// The broker's admin token: held by this one-shot step only, never by the worker.
    #[arg(long, env = "KEYLEASE_BROKER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: SecretString,
    /// The role's name.
    #[arg(long, env = "KEYLEASE_ROLE", default_value = "keylease-worker")]
    pub name: String,
    /// The largest charge one key may move, in USD.
    #[arg(
        long,
        env = "KEYLEASE_ROLE_MAX_KEY_USD_CAP",
        default_value_t = 10_000.0
    )]
    pub max_key_usd_cap: f64,
    /// What all the worker's keys together may move per UTC day, in USD.
    #[arg(long, env = "KEYLEASE_ROLE_DAILY_USD_CAP", default_value_t = 100_000.0)]
    pub daily_usd_cap: f64,
    /// The longest key TTL (the worker's `KEYLEASE_BROKER_MAX_TTL`).
    #[arg(long, env = "KEYLEASE_BROKER_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_ttl: Duration,
    /// The worker's token, made by the operator (`openssl rand -hex 32`) and
    /// registered for the role; without it the broker makes one and it is printed.
    #[arg(long, env = "KEYLEASE_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<SecretString>,
}

/// Creates the worker's role (kept if it exists) and registers or makes a
/// token for it; the token when the broker made it (to print once).
pub async fn setup(args: &RoleSetupArgs) -> Result<Option<SecretString>, WorkerError> {
    (args.transport).check("KEYLEASE_BROKER_URL", &args.broker_url)?;
    let admin = BrokerClient::new(
        args.broker_url.clone(),
        args.admin_token.clone(),
        SETUP_TIMEOUT,
        &args.transport.roots()?,
    )
    .map_err(|err| WorkerError::Broker(err.to_string()))?;
    let role = worker_role(
        &args.name,
        args.max_key_usd_cap,
        args.daily_usd_cap,
        args.max_ttl,
    );
    match admin.post_json("/v1/roles", &role).await {
        Ok(_) => tracing::info!(role = %args.name, "role created"),
        Err(BrokerError::Rejected { status: 409, .. }) => {
            tracing::info!(role = %args.name, "role exists: kept as it is");
        }
        Err(err) => {
            return Err(WorkerError::Broker(format!(
                "creating role {}: {err}",
                args.name
            )));
        }
    }
    let body = match &args.worker_token {
        Some(token) => json!({ "token": token.expose_secret() }),
        None => json!({}),
    };
    let path = format!("/v1/roles/{}/tokens", args.name);
    match admin.post_json(&path, &body).await {
        Ok(issued) => {
            tracing::info!(role = %args.name, token_id = %issued["id"].as_str().unwrap_or_default(), "role token issued");
            Ok(args
                .worker_token
                .is_none()
                .then(|| {
                    issued["token"]
                        .as_str()
                        .map(|t| SecretString::from(t.to_owned()))
                })
                .flatten())
        }
        // Registered by an earlier run of this step.
        Err(BrokerError::Rejected { status: 409, .. }) if args.worker_token.is_some() => {
            tracing::info!(role = %args.name, "worker token already registered");
            Ok(None)
        }
        Err(err) => Err(WorkerError::Broker(format!(
            "issuing a token of role {}: {err}",
            args.name
        ))),
    }
}

/// Says which kind of token the worker holds: warns on the admin token,
/// refuses one the broker does not know. A broker without `/v1/whoami`
/// (a hosted one) is told apart and let be.
pub async fn check_token(broker: &BrokerClient) -> Result<Reach, WorkerError> {
    match broker.whoami().await {
        Ok(who) if who["kind"] == "admin" => {
            tracing::warn!(
                "running with the broker's admin token: create a role (`keylease-worker role setup`) and give the worker its token"
            );
            Ok(Reach::Any)
        }
        Ok(who) => {
            let name = who["role"]["name"].as_str().unwrap_or_default();
            tracing::info!(role = %name, token_id = %who["token_id"].as_str().unwrap_or_default(), "broker token is a role token");
            let allowed: Vec<String> = who["role"]["allowed_endpoints"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for entry in endpoints() {
                if !allowed.iter().any(|wide| entry_within(entry, wide)) {
                    tracing::warn!(role = %name, endpoint = entry, "the worker's role does not allow an endpoint the activities ask for: make the role again (`keylease-worker role setup` under a new --name, or delete it first); `policy explain --broker-token` lists each mismatch");
                }
            }
            Ok(Reach::Role(allowed))
        }
        Err(BrokerError::Rejected { status: 401, .. }) => Err(WorkerError::Broker(
            "the broker refused KEYLEASE_BROKER_TOKEN: it is neither its admin token nor a live role token".to_owned(),
        )),
        Err(err) => {
            tracing::warn!(error = %err, "cannot tell which kind of token the worker holds");
            Ok(Reach::Any)
        }
    }
}

/// What the worker's broker token may ask keys for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The admin token, or a broker that does not say: anything.
    Any,
    /// A role's `allowed_endpoints`.
    Role(Vec<String>),
}

impl Reach {
    /// Whether a key may be asked for `entry` (`METHOD /path`).
    pub fn allows(&self, entry: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Role(allowed) => allowed.iter().any(|wide| entry_within(entry, wide)),
        }
    }
}

/// Whether role entry `wide` allows everything entry `narrow` does: the same
/// method (or none named), and `wide`'s pattern matching `narrow`'s with its
/// `*` read as a plain character, which only a `*` of `wide` can stand for
/// (the broker's rule).
fn entry_within(narrow: &str, wide: &str) -> bool {
    let split = |entry: &str| -> (Option<String>, String) {
        match entry.trim().split_once(char::is_whitespace) {
            Some((method, path)) => (Some(method.to_ascii_uppercase()), path.trim().to_owned()),
            None => (None, entry.trim().to_owned()),
        }
    };
    let ((narrow_method, narrow_path), (wide_method, wide_path)) = (split(narrow), split(wide));
    let method_within = match (wide_method, narrow_method) {
        (None, _) => true,
        (Some(wide), Some(narrow)) => wide == narrow,
        (Some(_), None) => false,
    };
    method_within && wildmatch::WildMatch::new(&wide_path).matches(&narrow_path)
}

/// What would make the activities' keys fail at issue under `role` (as
/// `/v1/whoami` shows it), one line each; empty when nothing would.
pub fn mismatches(role: &Value, policy: &CheckoutPolicy, worker_max_ttl: Duration) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = role["label_prefix"].as_str().unwrap_or_default();
    if !LABEL_PREFIX.starts_with(prefix) {
        found.push(format!(
            "label_prefix `{prefix}`: the activities' labels start with `{LABEL_PREFIX}`"
        ));
    }
    let allowed: Vec<&str> = role["allowed_endpoints"]
        .as_array()
        .map(|entries| entries.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for needed in endpoints() {
        if !allowed.iter().any(|wide| entry_within(needed, wide)) {
            found.push(format!("allowed_endpoints: the activities need `{needed}`"));
        }
    }
    let max_ttl = Duration::from_secs(role["max_expires_in"].as_u64().unwrap_or(0));
    for (activity, activity_policy) in [
        ("charge", &policy.charge),
        ("refund", &policy.refund),
        ("reconcile", &policy.reconcile),
    ] {
        let ttl = key_ttl(
            Some(activity_policy.schedule_to_close),
            None,
            worker_max_ttl,
        );
        if Duration::from_secs(ttl.seconds) > max_ttl {
            found.push(format!(
                "max_expires_in {}s: a {activity} key lives {}s (schedule_to_close + 20%)",
                max_ttl.as_secs(),
                ttl.seconds
            ));
        }
    }
    if role["allow_allowed_objects"] != true {
        found.push("allow_allowed_objects is off: every refund key would be refused".to_owned());
    }
    if role["allow_allowed_metadata"] != true {
        found
            .push("allow_allowed_metadata is off: every reconcile key would be refused".to_owned());
    }
    found
}

/// `policy explain`'s section on the role: what it allows next to what the
/// activities ask for, and each mismatch.
pub fn describe(role: &Value, policy: &CheckoutPolicy, worker_max_ttl: Duration) -> String {
    let mut text = format!(
        "role {}: labels {}*, per-key cap ${}, daily cap ${} (leased by brokers today ${}), key TTL at most {}s\n  allows: {}\n  the activities ask: {}\n  a charge above the per-key cap is refused at issue (role_limit)\n",
        role["name"].as_str().unwrap_or_default(),
        role["label_prefix"].as_str().unwrap_or_default(),
        role["max_key_usd_cap"],
        role["daily_usd_cap"],
        role["leased_usd_today"],
        role["max_expires_in"],
        role["allowed_endpoints"],
        endpoints().join(", "),
    );
    let found = mismatches(role, policy, worker_max_ttl);
    if found.is_empty() {
        text.push_str("  no mismatch: every key the activities ask for is within the role\n");
    }
    for line in found {
        text.push_str(&format!("  MISMATCH {line}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_role_fits_the_activities_and_a_narrower_one_is_flagged() {
        let policy = CheckoutPolicy::default();
        let max_ttl = Duration::from_secs(3600);
        let role = worker_role("w", 100.0, 1000.0, max_ttl);
        assert!(mismatches(&role, &policy, max_ttl).is_empty());
        let mut narrow = role.clone();
        narrow["allowed_endpoints"] = json!(["POST /v1/payment_intents"]);
        narrow["max_expires_in"] = json!(1);
        narrow["allow_allowed_metadata"] = json!(false);
        narrow["label_prefix"] = json!("payroll-");
        let found = mismatches(&narrow, &policy, max_ttl);
        for expected in [
            "label_prefix",
            "GET /v1/payment_intents/*",
            "POST /v1/refunds",
            "max_expires_in",
            "allow_allowed_metadata",
        ] {
            assert!(
                found.iter().any(|line| line.contains(expected)),
                "{expected}: {found:?}"
            );
        }
        assert!(entry_within("GET /v1/payment_intents/*", "/v1/*"));
        assert!(!entry_within(
            "/v1/payment_intents",
            "POST /v1/payment_intents"
        ));
        assert!(!entry_within(
            "POST /v1/payment_intents/*",
            "POST /v1/payment_intents/pi_*"
        ));
    }
}
