//! `GET /v1/payment_intents/search`: a subset of Stripe's search query
//! language — `field:'value'`, `metadata['key']:'value'`, `amount>100` (also
//! `<`, `>=`, `<=`), `-field:'value'` for negation, and clauses joined by `AND`
//! or by `OR` (not both, as on Stripe). Fields: `amount`, `created`,
//! `currency`, `customer`, `status`, `metadata[…]`. Like Stripe's, the index
//! is eventually consistent: a PaymentIntent is found only once the
//! simulator's indexing delay has passed since it was created.

use serde_json::{Value, json};

use crate::account::Account;
use crate::error::StripeError;
use crate::objects::PaymentIntent;
use crate::params::Params;
use crate::state::Ctx;

/// The `expand[]` path that adds the number of matches to a search answer.
pub const TOTAL_COUNT: &str = "total_count";

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    negated: bool,
    field: String,
    op: Op,
    value: String,
}

fn invalid(query: &str, why: &str) -> StripeError {
    StripeError::invalid("query", format!("Invalid query: {why} (in `{query}`)."))
}

/// Splits `query` into clauses and whether they are joined by `OR`.
fn parse(query: &str) -> Result<(Vec<Clause>, bool), StripeError> {
    let mut clauses = Vec::new();
    let (mut any_and, mut any_or) = (false, false);
    let mut rest = query.trim();
    loop {
        let (clause, after) = clause(rest)
            .ok_or_else(|| invalid(query, "expected a clause such as status:'succeeded'"))?;
        clauses.push(clause);
        rest = after.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(next) = rest.strip_prefix("AND ") {
            any_and = true;
            rest = next.trim_start();
        } else if let Some(next) = rest.strip_prefix("OR ") {
            any_or = true;
            rest = next.trim_start();
        } else {
            return Err(invalid(query, "clauses must be joined by AND or OR"));
        }
    }
    if any_and && any_or {
        return Err(invalid(query, "AND and OR cannot be combined in one query"));
    }
    if clauses.len() > 10 {
        return Err(invalid(query, "at most 10 clauses"));
    }
    Ok((clauses, any_or))
}

/// One clause at the start of `text`, and what follows it.
fn clause(text: &str) -> Option<(Clause, &str)> {
    let (negated, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let field_end = text.find([':', '>', '<'])?;
    let field = normalise_field(&text[..field_end])?;
    let text = &text[field_end..];
    let (op, text) = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        (">", Op::Gt),
        ("<", Op::Lt),
        (":", Op::Eq),
    ]
    .into_iter()
    .find_map(|(sym, op)| text.strip_prefix(sym).map(|rest| (op, rest)))?;
    let (value, rest) = match text.chars().next()? {
        quote @ ('\'' | '"') => {
            let end = text[1..].find(quote)? + 1;
            (text[1..end].to_owned(), &text[end + 1..])
        }
        _ => {
            let end = text.find(' ').unwrap_or(text.len());
            (text[..end].to_owned(), &text[end..])
        }
    };
    Some((
        Clause {
            negated,
            field,
            op,
            value,
        },
        rest,
    ))
}

/// `metadata['k']` and `metadata["k"]` become `metadata[k]`; other fields stay as they are.
fn normalise_field(field: &str) -> Option<String> {
    if let Some(inner) = field
        .strip_prefix("metadata[")
        .and_then(|f| f.strip_suffix(']'))
    {
        let key = inner.trim_matches(|c| c == '\'' || c == '"');
        return (!key.is_empty()).then(|| format!("metadata[{key}]"));
    }
    ["amount", "created", "currency", "customer", "status"]
        .contains(&field)
        .then(|| field.to_owned())
}

fn matches(pi: &PaymentIntent, clause: &Clause) -> Result<bool, String> {
    let number = |n: i64| -> Result<bool, String> {
        let v: i64 = clause
            .value
            .parse()
            .map_err(|_| format!("{} needs a number", clause.field))?;
        Ok(match clause.op {
            Op::Eq => n == v,
            Op::Gt => n > v,
            Op::Ge => n >= v,
            Op::Lt => n < v,
            Op::Le => n <= v,
        })
    };
    let text = |s: Option<&str>| -> Result<bool, String> {
        match clause.op {
            Op::Eq => Ok(s == Some(clause.value.as_str())),
            _ => Err(format!("{} can only be compared with ':'", clause.field)),
        }
    };
    let hit = match clause.field.as_str() {
        "amount" => number(pi.amount)?,
        "created" => number(pi.created)?,
        "currency" => text(Some(&pi.currency))?,
        "customer" => text(pi.customer.as_deref())?,
        "status" => text(Some(pi.status))?,
        field => {
            let key = field.trim_start_matches("metadata[").trim_end_matches(']');
            text(pi.metadata.get(key).map(String::as_str))?
        }
    };
    Ok(hit != clause.negated)
}

/// Answers a search, newest first, paged by `page` (the `next_page` of the previous answer).
pub fn payment_intents(
    account: &Account,
    params: &Params,
    expand: &[String],
    ctx: &Ctx,
) -> Result<Value, StripeError> {
    let (now_ms, version) = (ctx.now_ms, ctx.version);
    let query = params.required_string("query")?;
    let (clauses, any) = parse(&query)?;
    let limit = crate::listing::limit(params)?;
    let skip = match params.string("page")? {
        None => 0,
        Some(page) => page
            .strip_prefix("page_sim_")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                StripeError::invalid("page", "Invalid page: use the next_page of a search answer")
            })?,
    };
    let mut found = Vec::new();
    for pi in account
        .payment_intents
        .iter()
        .rev()
        .filter(|pi| pi.searchable_at_ms <= now_ms)
    {
        let mut results = clauses.iter().map(|c| matches(pi, c));
        let hit = if any {
            results.try_fold(false, |acc, r| r.map(|hit| acc || hit))
        } else {
            results.try_fold(true, |acc, r| r.map(|hit| acc && hit))
        }
        .map_err(|why| invalid(&query, &why))?;
        if hit {
            found.push(pi.id.clone());
        }
    }
    let page: Vec<&String> = found.iter().skip(skip).take(limit).collect();
    let has_more = found.len() > skip + limit;
    let data = page
        .iter()
        .map(|id| account.payment_intent_json(id, expand, version))
        .collect::<Result<Vec<_>, _>>()?;
    let mut answer = json!({
        "object": "search_result",
        "url": "/v1/payment_intents/search",
        "has_more": has_more,
        "next_page": has_more.then(|| format!("page_sim_{}", skip + limit)),
        "data": data,
    });
    if expand.iter().any(|e| e == TOTAL_COUNT) {
        answer["total_count"] = json!(found.len());
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stripes_query_language() {
        let (clauses, any) =
            parse("metadata['order_id']:'o-1' AND status:\"succeeded\" AND amount>=100").unwrap();
        assert!(!any);
        assert_eq!(clauses[0].field, "metadata[order_id]");
        assert_eq!(clauses[0].value, "o-1");
        assert_eq!(clauses[1].value, "succeeded");
        assert_eq!(
            (clauses[2].op.clone(), clauses[2].value.as_str()),
            (Op::Ge, "100")
        );
        let (negated, any) = parse("-status:'canceled' OR currency:'eur'").unwrap();
        assert!(any && negated[0].negated);
        for bad in [
            "",
            "status",
            "colour:'red'",
            "status:'a' AND amount>1 OR currency:'usd'",
            "status:'a' status:'b'",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
