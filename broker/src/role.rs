//! Roles: what a role token may issue. A role bounds every key issued with
//! one of its tokens (vendor, label prefix, endpoints, per-key cap, TTL,
//! connected accounts, reach beyond its label), and all its keys together
//! move at most its daily cap ([`crate::store`] reserves both at once).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::allowlist::EndpointRule;
use crate::error::ApiError;
use crate::new_key::{
    NewKey, invalid, is_valid_label, parse_duration, parse_endpoints, parse_usd, required,
};

/// Longest role name.
const MAX_NAME: usize = 64;
/// Most connected accounts a role may name.
const MAX_ACCOUNTS: usize = 100;
/// Longest a role token may live.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// The JSON body of `POST /v1/roles`; every field is checked by [`Role::parse`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoleRequest {
    name: Option<Value>,
    vendor: Option<Value>,
    label_prefix: Option<Value>,
    allowed_endpoints: Option<Value>,
    max_key_usd_cap: Option<Value>,
    daily_usd_cap: Option<Value>,
    max_expires_in: Option<Value>,
    stripe_accounts: Option<Value>,
    allow_allowed_objects: Option<Value>,
    allow_allowed_metadata: Option<Value>,
}

/// A role: the bounds of the keys its tokens issue.
#[derive(Debug, Clone)]
pub struct Role {
    /// `[a-z0-9_-]`, 1–64 characters.
    pub name: String,
    /// The vendor its keys are for.
    pub vendor: String,
    /// Every key label starts with it.
    pub label_prefix: String,
    /// Every entry of a key's allowlist is within one of these.
    pub allowed_endpoints: Vec<EndpointRule>,
    /// The largest cap of one key, in micro-dollars.
    pub max_key_cap_micros: i64,
    /// What all its keys together may hold per UTC day, in micro-dollars.
    pub daily_cap_micros: i64,
    /// The longest TTL of one key.
    pub max_expires_in: Duration,
    /// The connected accounts a key may act as; empty: the platform only.
    pub stripe_accounts: Vec<String>,
    /// Whether a key may be issued for objects (`allowed_objects`).
    pub allow_allowed_objects: bool,
    /// Whether a key may see objects by metadata (`allowed_metadata`).
    pub allow_allowed_metadata: bool,
}

fn parse_flag(value: Option<&Value>, field: &str) -> Result<bool, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(invalid(format!("{field} must be true or false"))),
    }
}

fn parse_accounts(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let accounts = value
        .as_array()
        .filter(|accounts| accounts.len() <= MAX_ACCOUNTS)
        .ok_or_else(|| {
            invalid(format!(
                "stripe_accounts must be a list of at most {MAX_ACCOUNTS} account ids"
            ))
        })?;
    accounts
        .iter()
        .map(|account| {
            crate::new_key::parse_stripe_account(Some(account))?
                .ok_or_else(|| invalid("stripe_accounts entries must be account ids like acct_123"))
        })
        .collect()
}

impl Role {
    /// Checks every field of `request` against the broker's vendors and maximum TTL.
    pub fn parse(
        request: NewRoleRequest,
        vendors: &[&str],
        max_ttl: Duration,
    ) -> Result<Self, ApiError> {
        let name = required(&request.name, "name")?
            .as_str()
            .filter(|name| {
                (1..=MAX_NAME).contains(&name.len())
                    && name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            })
            .ok_or_else(|| invalid(format!("name must be 1-{MAX_NAME} of [a-z0-9_-]")))?
            .to_owned();
        let vendor = required(&request.vendor, "vendor")?
            .as_str()
            .filter(|vendor| vendors.contains(vendor))
            .ok_or_else(|| invalid(format!("vendor must be one of: {}", vendors.join(", "))))?
            .to_owned();
        let label_prefix = required(&request.label_prefix, "label_prefix")?
            .as_str()
            .filter(|prefix| is_valid_label(prefix))
            .ok_or_else(|| {
                invalid("label_prefix must be 1-255 printable ASCII characters without whitespace")
            })?
            .to_owned();
        Ok(Self {
            name,
            vendor,
            label_prefix,
            allowed_endpoints: parse_endpoints(required(
                &request.allowed_endpoints,
                "allowed_endpoints",
            )?)?,
            max_key_cap_micros: parse_usd(
                required(&request.max_key_usd_cap, "max_key_usd_cap")?,
                "max_key_usd_cap",
            )?,
            daily_cap_micros: parse_usd(
                required(&request.daily_usd_cap, "daily_usd_cap")?,
                "daily_usd_cap",
            )?,
            max_expires_in: parse_duration(
                required(&request.max_expires_in, "max_expires_in")?,
                max_ttl,
                "max_expires_in",
            )?,
            stripe_accounts: parse_accounts(request.stripe_accounts.as_ref())?,
            allow_allowed_objects: parse_flag(
                request.allow_allowed_objects.as_ref(),
                "allow_allowed_objects",
            )?,
            allow_allowed_metadata: parse_flag(
                request.allow_allowed_metadata.as_ref(),
                "allow_allowed_metadata",
            )?,
        })
    }

    /// Refuses a key outside this role's bounds, naming the bound (403 `role_limit`).
    pub fn admits(&self, key: &NewKey) -> Result<(), ApiError> {
        let refuse = |why: String| Err(ApiError::RoleLimit(format!("role {}: {why}", self.name)));
        if key.vendor != self.vendor {
            return refuse(format!("vendor must be {}", self.vendor));
        }
        if !key.label.starts_with(&self.label_prefix) {
            return refuse(format!("label must start with {}", self.label_prefix));
        }
        if let Some(outside) = key
            .allowed_endpoints
            .iter()
            .find(|rule| !self.allowed_endpoints.iter().any(|wide| rule.within(wide)))
        {
            return refuse(format!(
                "allowed_endpoints entry `{outside}` is not within the role's allowed_endpoints"
            ));
        }
        if key.daily_cap_micros > self.max_key_cap_micros {
            return refuse(format!(
                "daily_usd_cap must be at most max_key_usd_cap {}",
                crate::usd::micros_to_usd(self.max_key_cap_micros)
            ));
        }
        if key.expires_in > self.max_expires_in {
            return refuse(format!(
                "expires_in must be at most max_expires_in {}s",
                self.max_expires_in.as_secs()
            ));
        }
        match &key.stripe_account {
            Some(account) if !self.stripe_accounts.contains(account) => {
                return refuse(format!(
                    "stripe_account {account} is not among stripe_accounts"
                ));
            }
            None if !self.stripe_accounts.is_empty() => {
                return refuse("stripe_account must be one of stripe_accounts".to_owned());
            }
            _ => {}
        }
        if !key.allowed_objects.is_empty() && !self.allow_allowed_objects {
            return refuse("allowed_objects is not allowed (allow_allowed_objects)".to_owned());
        }
        if !key.allowed_metadata.is_empty() && !self.allow_allowed_metadata {
            return refuse("allowed_metadata is not allowed (allow_allowed_metadata)".to_owned());
        }
        Ok(())
    }
}

/// Who made an admin-API call.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The holder of the broker's admin token.
    Admin,
    /// The holder of a live token of a role.
    Role {
        /// The role.
        role: Box<Role>,
        /// The token's id (`rtok_…`).
        token_id: String,
    },
}

impl Caller {
    /// The role the caller is bound to; `None` for the admin.
    pub fn role(&self) -> Option<&Role> {
        match self {
            Self::Admin => None,
            Self::Role { role, .. } => Some(role),
        }
    }

    /// The role's name; `None` for the admin.
    pub fn role_name(&self) -> Option<&str> {
        self.role().map(|role| role.name.as_str())
    }

    /// The token id a key issued by this caller records (`None`: the admin).
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Self::Admin => None,
            Self::Role { token_id, .. } => Some(token_id),
        }
    }
}
