//! List endpoints: `GET /v1/payment_intents` and `GET /v1/refunds`, newest
//! first, paged with `limit`, `starting_after` and `ending_before`.

use serde_json::Value;

use crate::account::Account;
use crate::error::StripeError;
use crate::objects::list;
use crate::params::Params;
use crate::version::ApiVersion;

/// A `created` filter: an exact second or bounds (`created[gte]=…`).
#[derive(Debug, Clone, Default)]
pub struct Created {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl Created {
    fn parse(params: &Params) -> Result<Self, StripeError> {
        if params.raw("created").is_some_and(Value::is_string) {
            let at = params.integer("created")?;
            return Ok(Self {
                gte: at,
                lte: at,
                ..Self::default()
            });
        }
        let Some(bounds) = params.nested("created", &["gt", "gte", "lt", "lte"])? else {
            return Ok(Self::default());
        };
        let bound = |name: &str| {
            bounds
                .integer(name)
                .map_err(|_| StripeError::invalid_integer(&format!("created[{name}]")))
        };
        Ok(Self {
            gt: bound("gt")?,
            gte: bound("gte")?,
            lt: bound("lt")?,
            lte: bound("lte")?,
        })
    }

    fn contains(&self, created: i64) -> bool {
        self.gt.is_none_or(|b| created > b)
            && self.gte.is_none_or(|b| created >= b)
            && self.lt.is_none_or(|b| created < b)
            && self.lte.is_none_or(|b| created <= b)
    }
}

/// `limit` from 1 to 100, 10 when absent.
pub fn limit(params: &Params) -> Result<usize, StripeError> {
    match params.integer("limit")? {
        None => Ok(10),
        Some(n @ 1..=100) => Ok(usize::try_from(n).unwrap_or(10)),
        Some(_) => Err(StripeError::invalid(
            "limit",
            "Invalid limit: must be between 1 and 100",
        )),
    }
}

/// One page of `ids` (newest first) after the cursors.
fn page(ids: Vec<String>, params: &Params, what: &str) -> Result<(Vec<String>, bool), StripeError> {
    let limit = limit(params)?;
    let position = |cursor: &str, param: &str| {
        ids.iter()
            .position(|id| id == cursor)
            .ok_or_else(|| StripeError::resource_missing(param, what, cursor))
    };
    if let Some(after) = params.string("starting_after")? {
        let from = position(&after, "starting_after")? + 1;
        let rest = &ids[from..];
        return Ok((
            rest.iter().take(limit).cloned().collect(),
            rest.len() > limit,
        ));
    }
    if let Some(before) = params.string("ending_before")? {
        let to = position(&before, "ending_before")?;
        let start = to.saturating_sub(limit);
        return Ok((ids[start..to].to_vec(), start > 0));
    }
    Ok((ids.iter().take(limit).cloned().collect(), ids.len() > limit))
}

/// `GET /v1/payment_intents`.
pub fn payment_intents(
    account: &Account,
    params: &Params,
    expand: &[String],
    version: ApiVersion,
) -> Result<Value, StripeError> {
    let created = Created::parse(params)?;
    let customer = params.string("customer")?;
    let ids = account
        .payment_intents
        .iter()
        .rev()
        .filter(|pi| created.contains(pi.created))
        .filter(|pi| customer.is_none() || pi.customer == customer)
        .map(|pi| pi.id.clone())
        .collect();
    let (ids, has_more) = page(ids, params, "payment_intent")?;
    let data = ids
        .iter()
        .map(|id| account.payment_intent_json(id, expand, version))
        .collect::<Result<_, _>>()?;
    Ok(list("/v1/payment_intents", data, has_more))
}

/// `GET /v1/refunds`, optionally of one PaymentIntent or charge.
pub fn refunds(
    account: &Account,
    params: &Params,
    expand: &[String],
    version: ApiVersion,
) -> Result<Value, StripeError> {
    let created = Created::parse(params)?;
    let payment_intent = params.string("payment_intent")?;
    let charge = params.string("charge")?;
    let ids = account
        .refunds
        .iter()
        .rev()
        .filter(|r| created.contains(r.created))
        .filter(|r| {
            payment_intent
                .as_ref()
                .is_none_or(|pi| &r.payment_intent == pi)
        })
        .filter(|r| charge.as_ref().is_none_or(|ch| &r.charge == ch))
        .map(|r| r.id.clone())
        .collect();
    let (ids, has_more) = page(ids, params, "refund")?;
    let data = ids
        .iter()
        .map(|id| account.refund_json(id, expand, version))
        .collect::<Result<_, _>>()?;
    Ok(list("/v1/refunds", data, has_more))
}
