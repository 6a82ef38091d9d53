//! Stripe's form parameters: `application/x-www-form-urlencoded` with bracket
//! nesting (`metadata[order_id]=o1`, `expand[]=latest_charge`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::StripeError;

/// Parsed parameters of one request. Every value is a string, an object or a
/// list, as in a form; typed readers below check them and name the param.
#[derive(Debug, Clone, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Parses a form body or query string. Anything not form-shaped (a JSON
    /// body, say) yields names no endpoint knows, as Stripe reads it.
    pub fn parse(form: &[u8]) -> Self {
        // Form encoding: clients percent-encode the brackets (`metadata%5Bk%5D`).
        match serde_qs::Config::new()
            .use_form_encoding(true)
            .deserialize_bytes::<Value>(form)
        {
            Ok(Value::Object(map)) => Self(map),
            _ => Self::default(),
        }
    }

    /// A canonical text of the parameters, for comparing idempotent requests.
    pub fn fingerprint(&self) -> String {
        // serde_json's Map is ordered by key, so equal params print equally.
        Value::Object(self.0.clone()).to_string()
    }

    /// The top-level parameter names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The raw value of `name`, for parameters the simulator stores as given.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Nested parameters (`automatic_payment_methods[enabled]=true`), refusing
    /// names outside `allowed` as Stripe does (`automatic_payment_methods[x]`).
    pub fn nested(&self, name: &str, allowed: &[&str]) -> Result<Option<Params>, StripeError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                    return Err(StripeError::unknown(&format!("{name}[{unknown}]")));
                }
                Ok(Some(Self(map.clone())))
            }
            Some(_) => Err(StripeError::invalid(
                name,
                format!("Invalid object: {name} must be a hash"),
            )),
        }
    }

    /// A list parameter: `a[]=x&a[]=y` or, as Stripe's libraries send it, `a[0]=x&a[1]=y`.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, StripeError> {
        let invalid = || {
            StripeError::invalid(
                name,
                format!("Invalid array: {name} must be a list of strings"),
            )
        };
        let items: Vec<&Value> = match self.0.get(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(Value::String(one)) if one.is_empty() => Vec::new(),
            Some(one @ Value::String(_)) => vec![one],
            Some(Value::Object(indexed)) => {
                let mut pairs = indexed
                    .iter()
                    .map(|(k, v)| k.parse::<usize>().map(|i| (i, v)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| invalid())?;
                pairs.sort_by_key(|(i, _)| *i);
                pairs.into_iter().map(|(_, v)| v).collect()
            }
            Some(_) => return Err(invalid()),
        };
        items
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional string parameter.
    pub fn string(&self, name: &str) -> Result<Option<String>, StripeError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) | Some(Value::Null) => Err(StripeError::invalid(
                name,
                format!("Invalid {name}: must not be empty"),
            )),
            Some(_) => Err(StripeError::invalid(
                name,
                format!("Invalid {name}: must be a string"),
            )),
        }
    }

    /// A required string parameter.
    pub fn required_string(&self, name: &str) -> Result<String, StripeError> {
        self.string(name)?.ok_or_else(|| StripeError::missing(name))
    }

    /// An optional whole-number parameter.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, StripeError> {
        self.string(name)
            .map_err(|_| StripeError::invalid_integer(name))?
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| StripeError::invalid_integer(name))
            })
            .transpose()
    }

    /// An optional boolean parameter (`true`/`false`).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, StripeError> {
        match self.string(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(StripeError::invalid(
                name,
                format!("Invalid boolean: {name} must be true or false"),
            )),
        }
    }

    /// An optional parameter from a fixed set of values.
    pub fn one_of(&self, name: &str, values: &[&str]) -> Result<Option<String>, StripeError> {
        match self.string(name)? {
            Some(value) if !values.contains(&value.as_str()) => Err(StripeError::invalid(
                name,
                format!("Invalid {name}: must be one of {}", values.join(", ")),
            )),
            other => Ok(other),
        }
    }

    /// `metadata[key]=value` pairs (an empty value unsets a key on Stripe; here it is kept out).
    pub fn metadata(&self) -> Result<BTreeMap<String, String>, StripeError> {
        match self.0.get("metadata") {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(pairs)) => pairs
                .iter()
                .filter(|(_, v)| v.as_str() != Some(""))
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(StripeError::invalid(
                        "metadata",
                        "Invalid metadata: values must be strings",
                    )),
                })
                .collect(),
            Some(_) => Err(StripeError::invalid(
                "metadata",
                "Invalid metadata: must be an object",
            )),
        }
    }

    /// The `expand[]` list.
    pub fn expand(&self) -> Result<Vec<String>, StripeError> {
        Ok(self.list("expand")?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripe_forms() {
        let p = Params::parse(b"amount=1000&currency=usd&metadata%5Border_id%5D=o1&expand[]=latest_charge&confirm=true");
        assert_eq!(p.integer("amount").unwrap(), Some(1000));
        assert_eq!(p.required_string("currency").unwrap(), "usd");
        assert_eq!(
            p.metadata().unwrap().get("order_id").map(String::as_str),
            Some("o1")
        );
        assert_eq!(p.expand().unwrap(), ["latest_charge"]);
        assert_eq!(p.boolean("confirm").unwrap(), Some(true));
    }

    #[test]
    fn reads_lists_as_stripes_libraries_send_them() {
        let indexed = Params::parse(b"expand%5B1%5D=b&expand%5B0%5D=a&t%5B0%5D=card");
        assert_eq!(indexed.expand().unwrap(), ["a", "b"]);
        assert_eq!(indexed.list("t").unwrap().unwrap(), ["card"]);
        let nested = Params::parse(b"apm%5Benabled%5D=true&apm%5Bcolour%5D=red");
        let refused = nested.nested("apm", &["enabled"]).unwrap_err().response();
        assert_eq!(refused.body["error"]["param"], "apm[colour]");
        assert!(
            nested
                .nested("apm", &["enabled", "colour"])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn bad_values_name_their_param() {
        let p = Params::parse(b"amount=12.5&confirm=yes&amount2=1&amount2=2");
        assert!(p.integer("amount").is_err());
        assert!(p.boolean("confirm").is_err());
        assert!(
            p.integer("amount2").is_err(),
            "a repeated param is not one integer"
        );
        assert!(p.required_string("currency").is_err());
    }

    #[test]
    fn json_bodies_carry_no_known_params() {
        let p = Params::parse(br#"{"amount":1000,"currency":"usd"}"#);
        assert!(p.string("amount").unwrap().is_none());
        assert!(p.required_string("currency").is_err());
    }

    #[test]
    fn fingerprints_ignore_order() {
        assert_eq!(
            Params::parse(b"a=1&b=2").fingerprint(),
            Params::parse(b"b=2&a=1").fingerprint()
        );
        assert_ne!(
            Params::parse(b"a=1").fingerprint(),
            Params::parse(b"a=2").fingerprint()
        );
    }
}
