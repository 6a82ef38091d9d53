//! What the broker knows of Stripe, in one place: where its API is and the
//! secret the broker holds for it, and what its requests and answers mean
//! for keys and money.
//!
//! Modules:
//! - [`endpoints`]: which calls move money and how each is valued, which it
//!   cannot value, which writes move none, and which creates make an object.
//! - [`ids`]: the shape of an object id, and where a path names its object.
//! - [`params`]: parameters that name objects or hold free text; amounts and currencies.
//! - [`answers`]: the objects an answer shows were made, and their prices.
//! - [`reach`]: whether an allowlist pattern can match any path of an endpoint template.

pub mod answers;
pub mod endpoints;
pub mod ids;
pub mod params;
pub mod reach;

use secrecy::SecretString;
use url::Url;

/// The first path segment of proxied Stripe requests (`/stripe/v1/…`), and
/// the `vendor` of every key: Stripe is the one upstream the broker serves.
pub const VENDOR: &str = "stripe";

/// Stripe's API as the broker reaches it: its base URL and the secret.
#[derive(Debug, Clone)]
pub struct StripeApi {
    /// Base URL requests are forwarded to.
    pub api_base: Url,
    /// Sent upstream in place of the vault token. Never logged.
    pub secret: SecretString,
}

impl StripeApi {
    /// The upstream URL for `path` (below `/stripe`) and `query`.
    pub fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut url = self.api_base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url.set_query(query);
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> StripeApi {
        StripeApi {
            api_base: base.parse().unwrap(),
            secret: "sk".into(),
        }
    }

    #[test]
    fn builds_upstream_urls_under_the_base() {
        assert_eq!(
            api("http://127.0.0.1:1/")
                .url("/v1/refunds", Some("a=1"))
                .as_str(),
            "http://127.0.0.1:1/v1/refunds?a=1"
        );
        assert_eq!(
            api("http://h/stripe-api").url("/v1/refunds", None).as_str(),
            "http://h/stripe-api/v1/refunds"
        );
    }
}
