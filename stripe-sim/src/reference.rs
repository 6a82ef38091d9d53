//! Stripe's own parameter lists (`reference/params.json`, from Stripe's
//! official Python library): what each endpoint accepts at the default API
//! version. A request naming anything else is refused `parameter_unknown`.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::error::StripeError;
use crate::params::Params;
use crate::version::ApiVersion;

static PARAMS_JSON: &str = include_str!("../reference/params.json");

/// Endpoint (`POST /v1/payment_intents/{id}`) → its parameter names.
static KNOWN: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct File {
        endpoints: HashMap<String, Vec<String>>,
    }
    // The file is part of the crate; the `every_endpoint_has_a_list` test reads it.
    serde_json::from_str::<File>(PARAMS_JSON)
        .map(|file| file.endpoints)
        .unwrap_or_default()
});

/// The parameters Stripe accepts on `endpoint`.
pub fn known(endpoint: &str) -> &'static [String] {
    KNOWN.get(endpoint).map(Vec::as_slice).unwrap_or(&[])
}

/// Refuses a parameter `endpoint` does not take at `version`: the list is the
/// default version's, with the method-list parameter under its older name on
/// versions before the rename.
pub fn check(endpoint: &str, params: &Params, version: ApiVersion) -> Result<(), StripeError> {
    let list = known(endpoint);
    let renamed = version.method_list_param();
    for name in params.names() {
        let known = match name {
            "payment_method_types" | "allowed_payment_method_types" => {
                name == renamed && list.iter().any(|k| k == "allowed_payment_method_types")
            }
            _ => list.iter().any(|k| k == name),
        };
        if !known {
            return Err(StripeError::unknown(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_a_list() {
        for endpoint in [
            "POST /v1/payment_intents",
            "POST /v1/payment_intents/{id}",
            "GET /v1/payment_intents/{id}",
            "POST /v1/payment_intents/{id}/confirm",
            "POST /v1/payment_intents/{id}/capture",
            "POST /v1/payment_intents/{id}/cancel",
            "POST /v1/payment_intents/{id}/increment_authorization",
            "GET /v1/payment_intents",
            "GET /v1/payment_intents/search",
            "POST /v1/refunds",
            "GET /v1/refunds",
            "GET /v1/refunds/{id}",
            "GET /v1/charges/{id}",
        ] {
            assert!(known(endpoint).iter().any(|p| p == "expand"), "{endpoint}");
        }
    }

    #[test]
    fn the_method_list_follows_the_version() {
        let params = Params::parse(b"amount=1&payment_method_types[0]=card");
        let endpoint = "POST /v1/payment_intents";
        assert!(check(endpoint, &params, ApiVersion::default()).is_err());
        let old = ApiVersion::from_header(Some("2023-10-16")).unwrap().version;
        assert!(check(endpoint, &params, old).is_ok());
        let renamed = Params::parse(b"allowed_payment_method_types[0]=card");
        assert!(check(endpoint, &renamed, ApiVersion::default()).is_ok());
        assert!(check(endpoint, &renamed, old).is_err());
    }
}
