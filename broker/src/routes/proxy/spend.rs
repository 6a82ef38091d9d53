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

use super::upstream::{Upstream, UpstreamFailure, fetch_object};
use crate::error::ApiError;
use crate::form::FormParams;
use crate::group_commit::Statement;
use crate::key::{KeyRecord, KeyStatus, SpendPeriod, SpendRow};
use crate::state::AppState;
use crate::store::{Hold, ObjectRecord, Reservation};
use crate::stripe::VENDOR;
use crate::stripe::answers::{created_id, made_objects};
use crate::stripe::endpoints::{Valuation, created_kind, unknown_valued_param, valuation};
use crate::stripe::ids::{object_in_path, object_path};
use crate::stripe::params::{amount_param, currency_param};
use crate::usd::{ValuationError, usd_micros};

/// What a request acts on, once its key is known: what every step from
/// valuation to settlement reads.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The caller's key.
    pub key: &'a KeyRecord,
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path below `/stripe`.
    pub path: &'a str,
}

impl Target<'_> {
    /// The object the path names, if any.
    fn object(&self) -> Option<&str> {
        object_in_path(self.path)
    }
}

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
    /// the need is reserved in it.
    period: SpendPeriod,
    /// The UTC day when valued: a role's key takes from the role's cap of that day.
    day: SpendPeriod,
    /// What the object's hold is reckoned against, and the new hold made in
    /// ([`KeyRecord::hold_row`]).
    hold_row: SpendRow,
}

fn micros(state: &AppState, amount: i64, currency: &str) -> Result<i64, ApiError> {
    usd_micros(amount, currency, state.usd_rates()).map_err(|ValuationError::NoRate(currency)| {
        ApiError::CurrencyNotAllowed(format!("no USD rate is configured for {currency}"))
    })
}

/// An object's record with its amount known now.
///
/// The stored price counts only when it is the broker's own: what Stripe
/// answered to a create, or the amount of the broker's last successful
/// valued write on the object. Anything else (an object created elsewhere,
/// or one whose last valued request failed, after which its amount is
/// unknown) is read from Stripe for this request, and that read is not kept:
/// the amount may change at Stripe before the next request.
async fn priced_object(
    state: &AppState,
    target: Target<'_>,
    id: &str,
) -> Result<(ObjectRecord, i64, String), ApiError> {
    let known = state.store().object(VENDOR, id).await?;
    if let Some(object) = &known
        && let (Some(amount), Some(currency)) = (object.amount, object.currency.clone())
    {
        return Ok((object.clone(), amount, currency));
    }
    let read_path = object_path(target.path)
        .ok_or_else(|| ApiError::BadParameter("the request names no object".to_owned()))?;
    let (amount, currency) = fetch_object(state, target.key, &read_path).await?;
    let object = match known {
        Some(object) => object,
        None => {
            // Only looked up, never created here: no label owns it, and its
            // price is this request's alone. The row holds its hold.
            let object = ObjectRecord::unpriced();
            state
                .store()
                .record_object(VENDOR, id, &object, Utc::now())
                .await?;
            object
        }
    };
    Ok((object, amount, currency))
}

/// How much the request with `params` could move, if it moves money.
pub async fn value(
    state: &AppState,
    target: Target<'_>,
    params: &FormParams,
) -> Result<Option<Valued>, ApiError> {
    let Some(valuation) = valuation(target.method, target.path) else {
        return Ok(None);
    };
    let names = params.pairs().map(|(name, _)| name);
    if let Some((name, call)) = unknown_valued_param(target.method, target.path, names) {
        return Err(ApiError::BadParameter(format!(
            "parameter `{}` of {call} is not in the broker's money table: it could change \
             what the request moves, so it is refused until the table values it",
            super::canonical::bounded(name, 64)
        )));
    }
    let now = Utc::now();
    let period = target.key.spend_period(now);
    let day = SpendPeriod::day_of(now);
    let hold_row = target.key.hold_row(&period, &day);
    if valuation == Valuation::Create {
        let (amount, currency) = (amount_param(params, "amount")?, currency_param(params)?);
        let (Some(amount), Some(currency)) = (amount, currency.as_ref()) else {
            let missing = if amount.is_none() {
                "amount"
            } else {
                "currency"
            };
            return Err(ApiError::BadParameter(format!(
                "parameter `{missing}` is required: a request that moves money needs one amount and one currency"
            )));
        };
        let need_micros = micros(state, amount, currency)?;
        return Ok(Some(Valued {
            object: None,
            need_micros,
            amount,
            currency: currency.clone(),
            period,
            day,
            hold_row,
        }));
    }
    let id = target
        .object()
        .ok_or_else(|| ApiError::BadParameter("the request names no object".to_owned()))?;
    let (object, amount, currency) = priced_object(state, target, id).await?;
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
    let held = object.held_against(&hold_row);
    let need_micros = (micros(state, moved, &currency)? - held).max(0);
    Ok(Some(Valued {
        object: Some(id.to_owned()),
        need_micros,
        amount: after,
        currency,
        period,
        day,
        hold_row,
    }))
}

/// Reserves what `valued` needs, in the same statement that checks the key is
/// still live; with nothing to reserve, checks the key again unless
/// `checked_since_lookup` (no body arrived and nothing was read upstream
/// since the key was looked up, so that lookup is as fresh as a second).
/// Either way a key revoked while the body arrived forwards nothing.
///
/// `before_forwarding`, the audit row of a request that moves money (and
/// a create's pending metadata pairs), is committed with the reservation
/// (or alone, when the request reserves nothing), so that a crash after
/// forwarding leaves the request on record. A role's refusal commits the
/// row alone: nothing is forwarded.
pub async fn reserve(
    state: &AppState,
    key: &KeyRecord,
    valued: Option<&Valued>,
    checked_since_lookup: bool,
    before_forwarding: Vec<Statement>,
) -> Result<Option<Reservation>, ApiError> {
    let now = Utc::now();
    let need = valued.is_some_and(|v| v.need_micros > 0);
    if let Some(valued) = valued.filter(|v| v.need_micros > 0) {
        // A role's key takes its part of the role's daily cap first.
        let day = &valued.day;
        if let Some(role) = &key.role
            && !state
                .role_budget()
                .take(state.store(), role, day, valued.need_micros)
                .await?
        {
            if let Some(row) = before_forwarding.into_iter().next() {
                state.store().write(vec![row]).await?;
            }
            return Err(ApiError::CapExhausted(format!(
                "request would pass role {}'s daily cap",
                role.name
            )));
        }
        let with = before_forwarding;
        let reserved = state
            .store()
            .reserve(
                key,
                valued.need_micros,
                &valued.period,
                &valued.day,
                now,
                with,
            )
            .await?;
        if let Some(reservation) = reserved {
            return Ok(Some(reservation));
        }
        if let Some(role) = &key.role {
            state.role_budget().give_back(role, day, valued.need_micros);
        }
    } else if !before_forwarding.is_empty() {
        state.store().write(before_forwarding).await?;
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

/// What an answer changes in the store, to be committed with its audit row.
pub struct Settlement {
    /// Micro-dollars the request holds once `writes` commit.
    pub held: i64,
    /// The release, the objects the answer made, the new hold of its object.
    pub writes: Vec<Statement>,
}

/// Whether what a request may move stays counted after `outcome`: on a 2xx
/// and on every ambiguous outcome (timeout, dropped connection, 5xx), where
/// the money may have moved; not on a 4xx or when upstream was never reached.
pub fn kept(outcome: &Result<Upstream, UpstreamFailure>) -> bool {
    match outcome {
        Ok(upstream) => !upstream.status.is_client_error(),
        Err(failure) => failure.maybe_delivered,
    }
}

/// Keeps or releases the reservation, and records what upstream made.
///
/// Released when upstream refused the request (4xx) or was never reached;
/// kept on success and on every ambiguous outcome (timeout, dropped
/// connection, 5xx), where the money may have moved. `path_owner` is the
/// label that owned the path's object when the key was looked up.
pub fn settle(
    state: &AppState,
    target: Target<'_>,
    path_owner: Option<&str>,
    valued: Option<&Valued>,
    reservation: Option<&Reservation>,
    outcome: &Result<Upstream, UpstreamFailure>,
) -> Settlement {
    let release = !kept(outcome);
    let mut settlement = Settlement {
        held: reservation.map_or(0, Reservation::micros),
        writes: Vec::new(),
    };
    if let (true, Some(reservation)) = (release, reservation) {
        settlement.writes.push(state.store().release(reservation));
        if let Some((role, day)) = reservation.role() {
            state
                .role_budget()
                .give_back(role, day, reservation.micros());
        }
        settlement.held = 0;
    }
    // A valued request on an object that was not answered 2xx may still have
    // changed its amount at Stripe (a failed increment, an update refused
    // after a change): its price is unknown until read again.
    let succeeded = matches!(outcome, Ok(upstream) if upstream.status.is_success());
    if let Some(id) = valued.and_then(|v| v.object.as_deref())
        && !succeeded
    {
        settlement
            .writes
            .push(state.store().forget_price(VENDOR, id));
    }
    if let Ok(upstream) = outcome {
        let owns_path_object = path_owner == Some(&*target.key.namespace());
        settlement.writes.extend(record(
            state,
            target,
            owns_path_object,
            valued,
            upstream.status,
            &upstream.body,
        ));
    }
    settlement
}

/// The objects an answer shows were made under the key's label, and the new
/// hold of the object a valued request acted on.
fn record(
    state: &AppState,
    target: Target<'_>,
    owns_path_object: bool,
    valued: Option<&Valued>,
    status: StatusCode,
    body: &[u8],
) -> Vec<Statement> {
    let mut writes = Vec::new();
    if !(status.is_success() || status.is_client_error()) {
        return writes;
    }
    // Objects made by a known create, or by a request on an object this label owns.
    let (owns_target, kind) = match target.object() {
        None => (
            target.method == "POST" && created_kind(target.path).is_some(),
            created_kind(target.path),
        ),
        Some(_) => (owns_path_object, None),
    };
    let valued = valued.filter(|_| status.is_success());
    // Nothing to record: the answer is not read (issue 24: a list's page of
    // a hundred objects was built here for nothing).
    if !owns_target && valued.is_none() {
        return writes;
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return writes;
    };
    let store = state.store();
    // When this answer's objects are recorded: a create's hold below goes
    // only to an object whose row carries this instant.
    let now = Utc::now();
    if owns_target {
        for made in made_objects(&body, kind) {
            let object = ObjectRecord {
                label: target.key.namespace().into_owned(),
                ..ObjectRecord::priced(made.amount, made.currency)
            };
            writes.push(store.record_object_statement(VENDOR, &made.id, &object, now));
        }
    }
    if let Some(valued) = valued {
        let hold = Hold {
            add_micros: valued.need_micros,
            row: &valued.hold_row,
            amount: valued.amount,
            currency: &valued.currency,
        };
        match &valued.object {
            // Any other call's object is in the path.
            Some(id) => writes.push(store.hold_for_object(VENDOR, id, &hold)),
            // A create's object is the one upstream answered with, held and
            // priced only if this very answer made it: a create replayed
            // under an Idempotency-Key seen before is Stripe's saved answer,
            // whose amount may no longer be the object's, so that object's
            // price is forgotten and its hold left as it was.
            None => {
                if let Some(id) = created_id(&body) {
                    writes.push(store.hold_for_object_made_at(VENDOR, id, &hold, now));
                    writes.push(store.forget_price_unless_made_at(VENDOR, id, now));
                }
            }
        }
    }
    writes
}
