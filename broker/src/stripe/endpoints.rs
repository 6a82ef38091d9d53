//! Stripe's endpoints as the broker sorts them: the money-moving calls it
//! values and how, those it cannot value, the writes known to move no
//! money, and the creates whose answer names an object the key's label
//! then owns.
//!
//! Templates are `METHOD /path` with `{id}` standing for one object id.

use super::ids::{STATIC_ROUTES, looks_like_id};
use super::params;
use super::reach::can_match;
use crate::allowlist::EndpointRule;

/// How a money-moving request is valued against a key's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valuation {
    /// Creates an object that moves `amount` of `currency` (PaymentIntent, Charge).
    Create,
    /// May change the object's `amount` and `currency` (PaymentIntent update).
    Update,
    /// Moves the object's amount (PaymentIntent confirm).
    ObjectAmount,
    /// Captures this parameter (the object's amount when absent).
    Capture(&'static str),
    /// Raises the object's amount to the `amount` given (increment_authorization).
    Increment,
}

/// A money-moving call the broker values: how, and which top-level
/// parameters it may carry.
struct ValuedCall {
    template: &'static str,
    valuation: Valuation,
    /// Its top-level parameters ([`params`]); any other is refused until
    /// this table values it.
    params: &'static [&'static str],
}

/// The money-moving calls the broker values, and how.
const VALUED: [ValuedCall; 7] = [
    ValuedCall {
        template: "POST /v1/payment_intents",
        valuation: Valuation::Create,
        params: &params::CREATE_PAYMENT_INTENT,
    },
    ValuedCall {
        template: "POST /v1/payment_intents/{id}",
        valuation: Valuation::Update,
        params: &params::UPDATE_PAYMENT_INTENT,
    },
    ValuedCall {
        template: "POST /v1/payment_intents/{id}/confirm",
        valuation: Valuation::ObjectAmount,
        params: &params::CONFIRM_PAYMENT_INTENT,
    },
    ValuedCall {
        template: "POST /v1/payment_intents/{id}/capture",
        valuation: Valuation::Capture("amount_to_capture"),
        params: &params::CAPTURE_PAYMENT_INTENT,
    },
    ValuedCall {
        template: "POST /v1/payment_intents/{id}/increment_authorization",
        valuation: Valuation::Increment,
        params: &params::INCREMENT_AUTHORIZATION,
    },
    ValuedCall {
        template: "POST /v1/charges",
        valuation: Valuation::Create,
        params: &params::CREATE_CHARGE,
    },
    ValuedCall {
        template: "POST /v1/charges/{id}/capture",
        valuation: Valuation::Capture("amount"),
        params: &params::CAPTURE_CHARGE,
    },
];

/// Calls that move money in ways the table above cannot value. A key never
/// reaches them: it is refused at issue time if its allowlist could, and a
/// request to one is refused whatever the allowlist says.
const UNVALUED: [&str; 22] = [
    "POST /v1/payment_intents/{id}/apply_customer_balance",
    "POST /v1/payment_intents/{id}/verify_microdeposits",
    "POST /v1/transfers",
    "POST /v1/payouts",
    "POST /v1/topups",
    "POST /v1/invoices",
    "POST /v1/invoices/{id}/pay",
    "POST /v1/invoices/{id}/finalize",
    "POST /v1/invoiceitems",
    "POST /v1/subscriptions",
    "POST /v1/subscriptions/{id}",
    "DELETE /v1/subscriptions/{id}",
    "POST /v1/subscription_items",
    "POST /v1/subscription_schedules",
    "POST /v1/checkout/sessions",
    "POST /v1/payment_links",
    "POST /v1/quotes/{id}/accept",
    "POST /v1/customers/{id}/balance_transactions",
    "POST /v1/customers/{id}/funding_instructions",
    "POST /v1/treasury/outbound_payments",
    "POST /v1/treasury/outbound_transfers",
    "POST /v1/issuing/cards",
];

/// POST calls known to move no money. A POST that is neither valued nor
/// here is refused: the broker forwards a write only when it knows what it
/// costs, so a new Stripe endpoint, or another spelling of a known one
/// (`/v1/Payment_Intents/…`, `…/confirm.`), can never move money uncounted.
const NO_MONEY: [&str; 25] = [
    "DELETE /v1/customers/{id}",
    "DELETE /v1/customers/{id}/discount",
    "DELETE /v1/products/{id}",
    "DELETE /v1/invoiceitems/{id}",
    "POST /v1/payment_intents/{id}/cancel",
    "POST /v1/refunds",
    "POST /v1/refunds/{id}",
    "POST /v1/refunds/{id}/cancel",
    "POST /v1/charges/{id}",
    "POST /v1/customers",
    "POST /v1/customers/{id}",
    "POST /v1/payment_methods",
    "POST /v1/payment_methods/{id}",
    "POST /v1/payment_methods/{id}/attach",
    "POST /v1/payment_methods/{id}/detach",
    "POST /v1/setup_intents",
    "POST /v1/setup_intents/{id}",
    "POST /v1/setup_intents/{id}/confirm",
    "POST /v1/setup_intents/{id}/cancel",
    "POST /v1/products",
    "POST /v1/products/{id}",
    "POST /v1/prices",
    "POST /v1/prices/{id}",
    "POST /v1/tokens",
    "POST /v1/disputes/{id}",
];

/// Parameters that move money on calls otherwise known to move none: a
/// customer's `balance` is a credit or debit applied to its invoices.
const UNVALUED_PARAMS: [(&str, &[&str]); 2] = [
    ("POST /v1/customers", &["balance"]),
    ("POST /v1/customers/{id}", &["balance"]),
];

/// Creates whose answer names an object the key's label then owns: the
/// collection, the object type Stripe answers with, and its id prefix. An id
/// of another shape (a product's caller-chosen id) is never taken as owned.
const CREATES: [(&str, &str, &str); 8] = [
    ("/v1/payment_intents", "payment_intent", "pi_"),
    ("/v1/charges", "charge", "ch_"),
    ("/v1/refunds", "refund", "re_"),
    ("/v1/customers", "customer", "cus_"),
    ("/v1/payment_methods", "payment_method", "pm_"),
    ("/v1/setup_intents", "setup_intent", "seti_"),
    ("/v1/products", "product", "prod_"),
    ("/v1/prices", "price", "price_"),
];

/// The object type and id prefix a create at `path` answers with.
pub fn created_kind(path: &str) -> Option<(&'static str, &'static str)> {
    CREATES
        .iter()
        .find(|(collection, _, _)| *collection == path)
        .map(|(_, object, prefix)| (*object, *prefix))
}

/// Whether `path` fits `template`, `{id}` matching one object id.
fn fits(template: &str, method: &str, path: &str) -> bool {
    let Some((template_method, template_path)) = template.split_once(' ') else {
        return false;
    };
    if template_method != method {
        return false;
    }
    let wanted: Vec<&str> = template_path.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    wanted.len() == got.len()
        && wanted.iter().zip(&got).all(|(w, g)| {
            if *w == "{id}" {
                looks_like_id(g) && !STATIC_ROUTES.contains(g)
            } else {
                w == g
            }
        })
}

/// How `method path` is valued, if it moves money the broker can value.
pub fn valuation(method: &str, path: &str) -> Option<Valuation> {
    valued_call(method, path).map(|call| call.valuation)
}

fn valued_call(method: &str, path: &str) -> Option<&'static ValuedCall> {
    VALUED.iter().find(|call| fits(call.template, method, path))
}

/// The first top-level parameter that moves money the broker cannot value
/// on a call otherwise free of money ([`UNVALUED_PARAMS`]), with the call's template.
pub fn unvalued_param<'a>(
    method: &str,
    path: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<(&'a str, &'static str)> {
    let (template, params) = UNVALUED_PARAMS
        .iter()
        .find(|(template, _)| fits(template, method, path))?;
    names
        .into_iter()
        .map(|name| name.split('[').next().unwrap_or(name))
        .find(|base| params.contains(base))
        .map(|base| (base, *template))
}

/// The first top-level parameter of a valued call that the money table does
/// not know for it (`amount_to_confirm`, a parameter of a later Stripe
/// version), with the call's template; `None` when every one is known or
/// the call is not valued.
pub fn unknown_valued_param<'a>(
    method: &str,
    path: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<(&'a str, &'static str)> {
    let call = valued_call(method, path)?;
    names
        .into_iter()
        .map(|name| name.split('[').next().unwrap_or(name))
        .find(|base| !call.params.contains(base))
        .map(|base| (base, call.template))
}

/// Whether `method path` moves money in a way the broker cannot value, or
/// is a write the broker does not know to be free of money.
pub fn is_unvalued(method: &str, path: &str) -> bool {
    let known_free = |path: &str| NO_MONEY.iter().any(|template| fits(template, method, path));
    // A DELETE can move money too (a subscription cancelled with `invoice_now`).
    let writes = method == "POST" || method == "DELETE";
    UNVALUED.iter().any(|template| fits(template, method, path))
        || (writes && valuation(method, path).is_none() && !known_free(path))
}

/// The unvalued money-moving calls an allowlist could reach, as templates.
///
/// Decided on the grammar of the rule's pattern and of the template
/// ([`super::reach`]), not on sample ids: `POST /v1/invoices/inv_*/pay`
/// reaches `POST /v1/invoices/{id}/pay` as surely as `POST /v1/*` does.
pub fn unvalued_reachable(rules: &[EndpointRule]) -> Vec<&'static str> {
    UNVALUED
        .iter()
        .filter(|template| {
            let (method, path) = template.split_once(' ').unwrap_or_default();
            rules.iter().any(|rule| {
                rule.method().is_none_or(|m| m == method) && can_match(rule.pattern(), path)
            })
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(entries: &[&str]) -> Vec<EndpointRule> {
        entries
            .iter()
            .map(|e| EndpointRule::try_from((*e).to_owned()).unwrap())
            .collect()
    }

    #[test]
    fn values_each_money_moving_call() {
        assert_eq!(
            valuation("POST", "/v1/payment_intents"),
            Some(Valuation::Create)
        );
        assert_eq!(
            valuation("POST", "/v1/payment_intents/pi_1/confirm"),
            Some(Valuation::ObjectAmount)
        );
        assert_eq!(
            valuation("POST", "/v1/payment_intents/pi_1"),
            Some(Valuation::Update)
        );
        assert_eq!(
            valuation("POST", "/v1/charges/ch_1/capture"),
            Some(Valuation::Capture("amount"))
        );
        assert_eq!(valuation("GET", "/v1/payment_intents/pi_1"), None);
        assert_eq!(valuation("POST", "/v1/payment_intents/pi_1/cancel"), None);
        assert_eq!(valuation("POST", "/v1/payment_intents/search"), None);
    }

    #[test]
    fn a_valued_call_carries_only_parameters_the_table_knows() {
        let confirm = "/v1/payment_intents/pi_1/confirm";
        assert_eq!(
            unknown_valued_param("POST", confirm, ["payment_method", "amount_to_confirm"]),
            Some(("amount_to_confirm", "POST /v1/payment_intents/{id}/confirm"))
        );
        assert_eq!(
            unknown_valued_param(
                "POST",
                confirm,
                ["payment_method", "expand[]", "return_url"]
            ),
            None
        );
        assert_eq!(
            unknown_valued_param(
                "POST",
                "/v1/payment_intents",
                ["amount", "amount_details[tip][amount]"]
            ),
            Some(("amount_details", "POST /v1/payment_intents"))
        );
        assert_eq!(
            unknown_valued_param("POST", "/v1/refunds", ["anything"]),
            None,
            "not a valued call"
        );
    }

    #[test]
    fn a_customer_balance_is_money_the_broker_cannot_value() {
        assert_eq!(
            unvalued_param("POST", "/v1/customers", ["email", "balance"]),
            Some(("balance", "POST /v1/customers"))
        );
        assert_eq!(
            unvalued_param("POST", "/v1/customers/cus_1A", ["balance"]),
            Some(("balance", "POST /v1/customers/{id}"))
        );
        assert_eq!(unvalued_param("POST", "/v1/customers", ["email"]), None);
        assert_eq!(
            unvalued_param("GET", "/v1/customers/cus_1A", ["balance"]),
            None
        );
    }

    #[test]
    fn wide_allowlists_reach_unvalued_money() {
        assert!(unvalued_reachable(&rules(&["/v1/*"])).len() == UNVALUED.len());
        assert_eq!(
            unvalued_reachable(&rules(&["POST /v1/*"])).len(),
            UNVALUED.len() - 1,
            "every POST template"
        );
        assert_eq!(
            unvalued_reachable(&rules(&[
                "POST /v1/invoices/inv_*/pay",
                "DELETE /v1/subscriptions/*"
            ])),
            vec![
                "POST /v1/invoices/{id}/pay",
                "DELETE /v1/subscriptions/{id}"
            ],
            "issue 20: patterns the seven sample ids missed"
        );
        assert_eq!(
            unvalued_reachable(&rules(&["/v1/payment_intents/*"])),
            vec![
                "POST /v1/payment_intents/{id}/apply_customer_balance",
                "POST /v1/payment_intents/{id}/verify_microdeposits"
            ]
        );
        assert!(
            unvalued_reachable(&rules(&[
                "POST /v1/payment_intents",
                "GET /v1/payment_intents/*",
                "POST /v1/payment_intents/*/confirm",
                "POST /v1/refunds"
            ]))
            .is_empty()
        );
        assert!(is_unvalued("POST", "/v1/invoices/in_9/pay"));
        assert!(!is_unvalued("GET", "/v1/invoices/in_9"));
        assert!(!is_unvalued("POST", "/v1/refunds"));
        assert!(!is_unvalued("POST", "/v1/payment_intents/pi_1/cancel"));
        assert!(!is_unvalued("DELETE", "/v1/customers/cus_1"));
        assert!(is_unvalued("DELETE", "/v1/subscriptions/sub_1"));
        for spelling in [
            "/v1/Payment_Intents/pi_1/confirm",
            "/v1/payment_intents/pi_1/confirm.",
            "/v1/payment_intents/pi_1/CONFIRM",
            "/v1/some_new_money_endpoint",
        ] {
            assert!(is_unvalued("POST", spelling), "{spelling}");
        }
    }
}
