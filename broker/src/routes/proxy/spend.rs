//! Valuing a money-moving request, holding it against the key's cap, and
//! settling the hold by what upstream answered.
//!
//! A hold belongs to the object it authorizes. Each object records how much
//! is already held for it; a request on it reserves only what it could move
//! beyond that. A decline releases the request's reservation and leaves the
//! object's hold as it was, so a later confirm of a declined PaymentIntent
//! reserves again: however the calls are ordered, a key never moves more
//! than its cap.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::Value;

use crate::error::ApiError;
use crate::form::FormParams;
use crate::group_commit::Statement;
use crate::money::{ValuationError, usd_micros};
use crate::state::AppState;
use crate::store::{KeyRecord, KeyStatus, ObjectRecord, Reservation};
use crate::stripe_api::{Valuation, created_kind, object_in_path, object_path, valuation};
use crate::vendor::Vendor;

use super::upstream::{Upstream, UpstreamFailure, fetch_object};

/// Largest amount in minor units the broker reads: Stripe's own limit is 8 digits.
const MAX_AMOUNT_DIGITS: usize = 12;

/// What a valued request asks to move, and what its object is worth after it.
#[derive(Debug)]
pub struct Valued {
    /// The object acted on; `None` for a create, whose object upstream names.
    object: Option<String>,
    /// Micro-dollars to reserve beyond what the object already holds.
    pub need_micros: i64,
    amount: i64,
    currency: String,
    /// The key's spend period when valued ([`KeyRecord::spend_period`]):
    /// the need is reckoned against the object's hold in it, reserved in it,
    /// and the new hold is made in it.
    period: String,
}

fn amount_param(params: &FormParams, name: &str) -> Result<Option<i64>, ApiError> {
    match params.scalar(name) {
        Some(text)
            if !text.is_empty()
                && text.len() <= MAX_AMOUNT_DIGITS
                && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(text.parse().ok())
        }
        None if !params.has(name) => Ok(None),
        _ => Err(ApiError::BadParameter(format!(
            "parameter `{name}` must be a whole number of minor units"
        ))),
    }
}

fn currency_param(params: &FormParams) -> Result<Option<String>, ApiError> {
    match params.scalar("currency") {
        Some(text) if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(text.to_ascii_lowercase()))
        }
        None if !params.has("currency") => Ok(None),
        _ => Err(ApiError::BadParameter(
            "parameter `currency` must be a three-letter currency code".to_owned(),
        )),
    }
}

fn micros(state: &AppState, amount: i64, currency: &str) -> Result<i64, ApiError> {
    usd_micros(amount, currency, state.usd_rates()).map_err(|ValuationError::NoRate(currency)| {
        ApiError::CurrencyNotAllowed(format!("no USD rate is configured for {currency}"))
    })
}

/// An object's record with its amount known: from the store, or read upstream once.
async fn priced_object(
    state: &AppState,
    vendor: &Vendor,
    key: &KeyRecord,
    path: &str,
    id: &str,
) -> Result<(ObjectRecord, i64, String), ApiError> {
    let known = state.store().object(vendor.name, id).await?;
    if let Some(object) = &known
        && let (Some(amount), Some(currency)) = (object.amount, object.currency.clone())
    {
        return Ok((object.clone(), amount, currency));
    }
    let read_path = object_path(path)
        .ok_or_else(|| ApiError::BadParameter("the request names no object".to_owned()))?;
    let (amount, currency) = fetch_object(state, vendor, key, &read_path).await?;
    let object = match known {
        Some(object) => object,
        None => {
            // Only looked up, never created here: no label owns it.
            let object = ObjectRecord {
                label: String::new(),
                amount: Some(amount),
                currency: Some(currency.clone()),
                held_micros: 0,
                held_for: None,
            };
            state
                .store()
                .record_object(vendor.name, id, &object, Utc::now())
                .await?;
            object
        }
    };
    Ok((object, amount, currency))
}

/// How much `method path` with `params` could move, if it moves money.
pub async fn value(
    state: &AppState,
    vendor: &Vendor,
    key: &KeyRecord,
    method: &str,
    path: &str,
    params: &FormParams,
) -> Result<Option<Valued>, ApiError> {
    let Some(valuation) = valuation(method, path) else {
        return Ok(None);
    };
    let period = key.spend_period(Utc::now());
    if valuation == Valuation::Create {
        let (Some(amount), Some(currency)) =
            (amount_param(params, "amount")?, currency_param(params)?)
        else {
            return Err(ApiError::BadParameter(
                "a request that moves money needs one amount and one currency".to_owned(),
            ));
        };
        let need_micros = micros(state, amount, &currency)?;
        return Ok(Some(Valued {
            object: None,
            need_micros,
            amount,
            currency,
            period,
        }));
    }
    let id = object_in_path(path)
        .ok_or_else(|| ApiError::BadParameter("the request names no object".to_owned()))?;
    let (object, amount, currency) = priced_object(state, vendor, key, path, id).await?;
    let (moved, after, currency) = match valuation {
        Valuation::Update => {
            let new_amount = amount_param(params, "amount")?.unwrap_or(amount);
            let new_currency = currency_param(params)?.unwrap_or(currency);
            (new_amount, new_amount, new_currency)
        }
        Valuation::Capture(name) => (
            amount_param(params, name)?.unwrap_or(amount),
            amount,
            currency,
        ),
        Valuation::Increment => {
            let new_amount = amount_param(params, "amount")?.ok_or_else(|| {
                ApiError::BadParameter("parameter `amount` is required".to_owned())
            })?;
            (new_amount, new_amount, currency)
        }
        Valuation::ObjectAmount | Valuation::Create => (amount, amount, currency),
    };
    let need_micros =
        (micros(state, moved, &currency)? - object.held_against(&key.spend_row(&period))).max(0);
    Ok(Some(Valued {
        object: Some(id.to_owned()),
        need_micros,
        amount: after,
        currency,
        period,
    }))
}

/// Reserves what `valued` needs, in the same statement that checks the key is
/// still live; with nothing to reserve, checks the key again unless
/// `checked_since_lookup` (no body arrived and nothing was read upstream
/// since the key was looked up, so that lookup is as fresh as a second).
/// Either way a key revoked while the body arrived forwards nothing.
pub async fn reserve(
    state: &AppState,
    key: &KeyRecord,
    valued: Option<&Valued>,
    checked_since_lookup: bool,
) -> Result<Option<Reservation>, ApiError> {
    let now = Utc::now();
    let need = valued.is_some_and(|v| v.need_micros > 0);
    if let Some(valued) = valued.filter(|v| v.need_micros > 0)
        && let Some(reservation) = state
            .store()
            .reserve(key, valued.need_micros, &valued.period, now)
            .await?
    {
        return Ok(Some(reservation));
    }
    if !need && checked_since_lookup {
        return Ok(None);
    }
    let current = state
        .store()
        .key(&key.id)
        .await?
        .ok_or(ApiError::InvalidKey)?;
    match current.status(now) {
        KeyStatus::Revoked => Err(ApiError::KeyRevoked),
        KeyStatus::Expired => Err(ApiError::KeyExpired),
        KeyStatus::Active if need => Err(ApiError::CapExhausted(
            "request would pass the key's spend cap".to_owned(),
        )),
        KeyStatus::Active => Ok(None),
    }
}

/// A Charge id, as a PaymentIntent's `latest_charge` or a decline's `charge` names it.
fn charge_id(value: &Value) -> Option<&str> {
    value
        .as_str()
        .filter(|id| id.starts_with("ch_") || id.starts_with("py_"))
}

/// Objects an answer shows were made under the key's label.
///
/// For a create (`kind`: the object type and id prefix Stripe answers that
/// create with), the object created, or in a decline the PaymentIntent or
/// Charge it left; an answer of another type, or an id of another shape,
/// is not taken (a caller may choose some objects' ids). For a request on an
/// object the label owns (`kind` is `None`), the Charge a PaymentIntent made.
fn made_objects(body: &Value, kind: Option<(&str, &str)>) -> Vec<(String, ObjectRecord)> {
    let mut made = Vec::new();
    let error = &body["error"];
    let created = if error.is_object() {
        if let Some(charge) = charge_id(&error["charge"]) {
            made.push((charge.to_owned(), ObjectRecord::unpriced()));
        }
        &error["payment_intent"]
    } else {
        body
    };
    if let Some((object, prefix)) = kind
        && created["object"] == object
        && let Some(id) = created["id"].as_str().filter(|id| id.starts_with(prefix))
    {
        made.push((
            id.to_owned(),
            ObjectRecord {
                label: String::new(),
                amount: created["amount"].as_i64(),
                currency: created["currency"].as_str().map(str::to_ascii_lowercase),
                held_micros: 0,
                held_for: None,
            },
        ));
    }
    if created["object"] == "payment_intent"
        && let Some(charge) = charge_id(&created["latest_charge"])
    {
        made.push((charge.to_owned(), ObjectRecord::unpriced()));
    }
    made
}

/// What an answer changes in the store, to be committed with its audit row.
pub struct Settlement {
    /// Micro-dollars the request holds once `writes` commit.
    pub held: i64,
    /// The release, the objects the answer made, the new hold of its object.
    pub writes: Vec<Statement>,
}

/// Keeps or releases the reservation, and records what upstream made.
///
/// Released when upstream refused the request (4xx) or was never reached;
/// kept on success and on every ambiguous outcome (timeout, dropped
/// connection, 5xx), where the money may have moved. `path_owner` is the
/// label that owned the path's object when the key was looked up.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    state: &AppState,
    vendor: &Vendor,
    key: &KeyRecord,
    method: &str,
    path: &str,
    path_owner: Option<&str>,
    valued: Option<&Valued>,
    reservation: Option<&Reservation>,
    outcome: &Result<Upstream, UpstreamFailure>,
) -> Settlement {
    let release = match outcome {
        Ok(upstream) => upstream.status.is_client_error(),
        Err(failure) => !failure.maybe_delivered,
    };
    let mut settlement = Settlement {
        held: reservation.map_or(0, Reservation::micros),
        writes: Vec::new(),
    };
    if let (true, Some(reservation)) = (release, reservation) {
        settlement.writes.push(state.store().release(reservation));
        settlement.held = 0;
    }
    if let Ok(upstream) = outcome {
        let owns_target = path_owner == Some(key.label.as_str());
        settlement.writes.extend(record(
            state,
            vendor,
            key,
            method,
            path,
            owns_target,
            valued,
            upstream.status,
            &upstream.body,
        ));
    }
    settlement
}

/// The objects an answer shows were made under the key's label, and the new
/// hold of the object a valued request acted on.
#[allow(clippy::too_many_arguments)]
fn record(
    state: &AppState,
    vendor: &Vendor,
    key: &KeyRecord,
    method: &str,
    path: &str,
    owns_path_object: bool,
    valued: Option<&Valued>,
    status: StatusCode,
    body: &[u8],
) -> Vec<Statement> {
    let mut writes = Vec::new();
    if !(status.is_success() || status.is_client_error()) {
        return writes;
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return writes;
    };
    let store = state.store();
    // Objects made by a known create, or by a request on an object this label owns.
    let (owns_target, kind) = match object_in_path(path) {
        None => (
            method == "POST" && created_kind(path).is_some(),
            created_kind(path),
        ),
        Some(_) => (owns_path_object, None),
    };
    if owns_target {
        for (id, mut object) in made_objects(&body, kind) {
            object.label = key.label.clone();
            writes.push(store.record_object_statement(vendor.name, &id, &object, Utc::now()));
        }
    }
    if let Some(valued) = valued.filter(|_| status.is_success()) {
        // A create's object is the one upstream made; any other's is in the path.
        let id = match &valued.object {
            Some(id) => Some(id.clone()),
            None => body["id"].as_str().map(str::to_owned),
        };
        if let Some(id) = id {
            writes.push(store.hold_for_object(
                vendor.name,
                &id,
                valued.need_micros,
                &key.spend_row(&valued.period),
                valued.amount,
                &valued.currency,
            ));
        }
    }
    writes
}
