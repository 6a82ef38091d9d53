//! Upstream APIs the broker proxies to, and which of their requests move money.

use url::Url;

use secrecy::SecretString;

/// One upstream API: where it is and the secret the broker holds for it.
/// Which of its calls move money is in [`crate::stripe_api`].
#[derive(Debug, Clone)]
pub struct Vendor {
    /// The first path segment of proxied requests, and a key's `vendor`.
    pub name: &'static str,
    /// Base URL requests are forwarded to.
    pub api_base: Url,
    /// Sent upstream in place of the vault token. Never logged.
    pub secret: SecretString,
}

impl Vendor {
    /// Stripe.
    pub fn stripe(api_base: Url, secret: SecretString) -> Self {
        Self {
            name: "stripe",
            api_base,
            secret,
        }
    }

    /// The upstream URL for `path` (below the vendor segment) and `query`.
    pub fn upstream_url(&self, path: &str, query: Option<&str>) -> Url {
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

    #[test]
    fn builds_upstream_urls_under_the_base() {
        let plain = Vendor::stripe("http://127.0.0.1:1/".parse().unwrap(), "sk".into());
        assert_eq!(
            plain.upstream_url("/v1/refunds", Some("a=1")).as_str(),
            "http://127.0.0.1:1/v1/refunds?a=1"
        );
        let nested = Vendor::stripe("http://h/stripe-api".parse().unwrap(), "sk".into());
        assert_eq!(
            nested.upstream_url("/v1/refunds", None).as_str(),
            "http://h/stripe-api/v1/refunds"
        );
    }
}
