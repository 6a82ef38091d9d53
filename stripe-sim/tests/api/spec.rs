//! A checker for the part of JSON Schema that Stripe's OpenAPI spec uses
//! (`$ref`, `anyOf`, `nullable`, `type`, `properties`, `required`, `items`,
//! `enum`), reading `reference/spec3-2023-08-16.trimmed.json` (the spec cut
//! down by `reference/trim_spec.py`) and
//! `reference/changelog-since-2023-08-16.json`: a field, or an enum value,
//! that Stripe added after 2023-08-16 may appear although the spec lacks it;
//! one it removed may be missing. A field of Stripe's own example objects
//! (`reference/fixtures.json`, e.g. a PaymentIntent's legacy `source`) may
//! appear too: Stripe sends fields its spec leaves out.

use serde_json::{Map, Value};

const SPEC: &str = include_str!("../../reference/spec3-2023-08-16.trimmed.json");
const CHANGELOG: &str = include_str!("../../reference/changelog-since-2023-08-16.json");
const FIXTURES: &str = include_str!("../../reference/fixtures.json");

/// Objects by component, named as the changelog names them
/// (`PaymentIntent.status`): entering one starts the changelog path afresh.
/// The changelog covers the first four only; within the others (a
/// PaymentMethod) a field the 2023 spec lacks cannot be judged, and passes.
const CHANGELOG_ROOTS: [(&str, &str); 5] = [
    ("payment_intent", "PaymentIntent"),
    ("charge", "Charge"),
    ("refund", "Refund"),
    ("api_errors", "StripeError"),
    ("payment_method", "PaymentMethod"),
];
const COVERED: [&str; 4] = ["PaymentIntent", "Charge", "Refund", "StripeError"];

/// Stripe's answers by operation (`POST /v1/refunds`), their components, and what changed since.
pub struct Spec {
    answers: Map<String, Value>,
    schemas: Map<String, Value>,
    changelog: Value,
    examples: Value,
}

impl Spec {
    pub fn load() -> Self {
        let spec: Value = serde_json::from_str(SPEC).unwrap();
        Self {
            answers: spec["answers"].as_object().unwrap().clone(),
            schemas: spec["schemas"].as_object().unwrap().clone(),
            changelog: serde_json::from_str(CHANGELOG).unwrap(),
            examples: serde_json::from_str::<Value>(FIXTURES).unwrap()["objects"].clone(),
        }
    }

    /// The operations the spec copy holds.
    pub fn operations(&self) -> impl Iterator<Item = &String> {
        self.answers.keys()
    }

    /// What is wrong with `body`, an answer with `status` to `operation`.
    pub fn check_answer(&self, operation: &str, status: u16, body: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let schema = if status == 200 {
            &self.answers[operation]
        } else {
            &self.schemas["error"]
        };
        self.check(schema, body, operation, "", &mut problems);
        problems
    }

    /// Whether the changelog lists `name` under `section` (`added`, `removed`, `enum_added`) for `path`.
    fn changed(&self, section: &str, path: &str, name: &str) -> bool {
        !self.changelog[section][path][name].is_null()
    }

    /// Whether Stripe's example object has `name` at `path` (`PaymentIntent.amount_details`).
    fn in_example(&self, path: &str, name: &str) -> bool {
        let mut segments = path.split('.');
        let root = segments.next().unwrap_or_default();
        let Some((component, _)) = CHANGELOG_ROOTS.iter().find(|(_, r)| *r == root) else {
            return false;
        };
        let object = segments.fold(&self.examples[component], |v, s| &v[s]);
        object.get(name).is_some()
    }

    fn check(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap_or_default();
            let path = CHANGELOG_ROOTS
                .iter()
                .find(|(component, _)| *component == name)
                .map_or(path, |(_, root)| *root);
            return self.check(&self.schemas[name], value, at, path, problems);
        }
        if value.is_null() {
            if schema["nullable"] != Value::Bool(true) {
                problems.push(format!("{at}: null, but not nullable"));
            }
            return;
        }
        if let Some(branches) = schema["anyOf"].as_array() {
            let mut closest: Option<Vec<String>> = None;
            for branch in branches {
                let mut found = Vec::new();
                self.check(branch, value, at, path, &mut found);
                if found.is_empty() {
                    return;
                }
                if closest.as_ref().is_none_or(|c| found.len() < c.len()) {
                    closest = Some(found);
                }
            }
            problems.extend(closest.unwrap_or_default());
            return;
        }
        let fits = match schema["type"].as_str() {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some(other) => {
                problems.push(format!("{at}: the checker does not know type {other}"));
                return;
            }
        };
        if !fits {
            problems.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
            && !value
                .as_str()
                .is_some_and(|v| self.changed("enum_added", path, v))
        {
            problems.push(format!("{at}: {value} is none of {}", schema["enum"]));
        }
        if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
            for (i, item) in values.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"), path, problems);
            }
        }
        let (Some(properties), Some(fields)) =
            (schema["properties"].as_object(), value.as_object())
        else {
            return;
        };
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) && !self.changed("removed", path, name) {
                problems.push(format!("{at}: required field {name} is missing"));
            }
        }
        for (name, field) in fields {
            let field_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            match properties.get(name) {
                Some(property) => self.check(
                    property,
                    field,
                    &format!("{at}.{name}"),
                    &field_path,
                    problems,
                ),
                None if self.changed("added", path, name) || self.in_example(path, name) => {}
                None if !COVERED
                    .iter()
                    .any(|root| path.split('.').next() == Some(root)) => {}
                None => problems.push(format!(
                    "{at}: field {name} is neither in the spec nor added since"
                )),
            }
        }
    }
}

#[test]
fn the_checker_catches_what_it_should() {
    let spec = Spec::load();
    let refund = |patch: Value| {
        let mut body = serde_json::json!({
            "id": "re_1", "object": "refund", "amount": 100, "created": 1, "currency": "usd",
            "charge": "ch_1", "metadata": {}, "status": "succeeded", "pending_reason": null,
        });
        for (k, v) in patch.as_object().unwrap() {
            if v == "<delete>" {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        spec.check_answer("GET /v1/refunds/{refund}", 200, &body)
    };
    assert_eq!(refund(serde_json::json!({})), Vec::<String>::new());
    for (patch, expected) in [
        (serde_json::json!({"amount": "100"}), "is not of type"),
        (
            serde_json::json!({"created": "<delete>"}),
            "required field created",
        ),
        (serde_json::json!({"amount": null}), "not nullable"),
        (serde_json::json!({"object": "charge"}), "is none of"),
        (serde_json::json!({"colour": "red"}), "neither in the spec"),
        (serde_json::json!({"charge": 3}), "is not of type"),
    ] {
        let problems = refund(patch.clone());
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{patch}: {problems:?}"
        );
    }
    let error = |kind: &str| {
        spec.check_answer(
            "GET /v1/refunds/{refund}",
            401,
            &serde_json::json!({"error": {"type": kind, "message": "m"}}),
        )
    };
    assert!(error("invalid_request_error").is_empty());
    assert!(!error("authentication_error").is_empty());
}
