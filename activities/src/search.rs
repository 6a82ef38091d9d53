//! Stripe's search of PaymentIntents, read page after page: what the order
//! check and `reconcile` both read. A page of search is at most 100 results,
//! and who can create PaymentIntents with the metadata searched for can push
//! any one result off the first page, so a search is only an answer once it
//! is read to its end.

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::stripe_client::{ProxyError, StripeClient};

/// Most pages one search reads (100 PaymentIntents each).
pub const MAX_PAGES: usize = 10;

/// The endpoint searched.
const SEARCH_PATH: &str = "/v1/payment_intents/search";

/// One page of a search answer.
#[derive(Debug, Deserialize)]
struct SearchPage<T> {
    data: Vec<T>,
    /// Stripe always says; a page that does not is no answer (never read
    /// as the search's end).
    has_more: bool,
    /// The cursor to the next page.
    #[serde(default)]
    next_page: Option<String>,
}

/// Why a search could not be read to its end.
#[derive(Debug)]
pub enum Unsearched {
    /// A page's call failed.
    Call(ProxyError),
    /// A page said there is more and gave no `next_page` to it.
    NoNextPage,
    /// More than [`MAX_PAGES`] pages.
    TooMany,
}

/// Every PaymentIntent Stripe's search finds for `query`, page after page
/// (`extra`: parameters every page is asked with, such as `expand[]`).
pub async fn every_page<T: DeserializeOwned>(
    stripe: &StripeClient,
    token: &SecretString,
    query: &str,
    extra: &[(&str, &str)],
) -> Result<Vec<T>, Unsearched> {
    let mut found = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut params = vec![("query", query), ("limit", "100")];
        params.extend_from_slice(extra);
        if let Some(page) = &next {
            params.push(("page", page.as_str()));
        }
        let page: SearchPage<T> = stripe
            .get(token, SEARCH_PATH, &params)
            .await
            .map_err(Unsearched::Call)?;
        found.extend(page.data);
        if !page.has_more {
            return Ok(found);
        }
        next = Some(page.next_page.ok_or(Unsearched::NoNextPage)?);
    }
    Err(Unsearched::TooMany)
}
