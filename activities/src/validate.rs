//! Input checks, done before any key is issued so that bad input costs nothing.

use keylease_workflows::contract::{CaptureMode, ChargeInput, RefundInput};

/// Largest amount Stripe takes, in minor units.
const MAX_AMOUNT: i64 = 99_999_999;
/// Stripe allows 50 metadata pairs; four are ours.
const MAX_METADATA_PAIRS: usize = 46;
/// Metadata keys Keylease sets itself.
const RESERVED_METADATA: [&str; 4] = ["order_id", "workflow_id", "checkout_id", "order_key"];

/// A charge that passed validation.
#[derive(Debug, Clone)]
pub struct ValidCharge {
    /// As given.
    pub input: ChargeInput,
    /// The key's spend cap in USD.
    pub cap_usd: f64,
}

fn check_id(field: &str, value: &str) -> Result<(), String> {
    // As long as the checkout's (its `OrderId` search attribute's) bound,
    // so that every order id a checkout takes, its charge takes too.
    if value.is_empty()
        || value.len() > keylease_workflows::checkout::types::MAX_ORDER_ID_BYTES
        || value.chars().any(char::is_control)
    {
        return Err(format!(
            "{field} must be 1-{} bytes without control characters",
            keylease_workflows::checkout::types::MAX_ORDER_ID_BYTES
        ));
    }
    Ok(())
}

fn check_amount(amount: i64) -> Result<(), String> {
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(format!("amount must be from 1 to {MAX_AMOUNT} minor units"));
    }
    Ok(())
}

/// A checkout id fits in a search query's quotes as it is (a run id does):
/// `charge` writes it into metadata and `reconcile` searches for it, so both
/// take exactly the same ids.
pub fn check_checkout_id(checkout_id: &str) -> Result<(), String> {
    let fits = !checkout_id.is_empty()
        && checkout_id.len() <= 100
        && checkout_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        Ok(())
    } else {
        Err("checkout_id must be 1-100 letters, digits, '-' or '_'".to_owned())
    }
}

/// Whether `id` is in Stripe's id alphabet: 1-255 of `[A-Za-z0-9_]`.
pub(crate) fn is_stripe_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a charge and settles its spend cap.
pub fn charge(input: &ChargeInput) -> Result<ValidCharge, String> {
    check_id("order_id", &input.order_id)?;
    check_amount(input.amount)?;
    if input.currency.len() != 3 || !input.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err("currency must be a lowercase ISO 4217 code, e.g. usd".to_owned());
    }
    // The key is issued naming these objects; the broker takes only Stripe's id alphabet.
    if !is_stripe_id(&input.payment_method) {
        return Err("payment_method must be a Stripe PaymentMethod id ([A-Za-z0-9_])".to_owned());
    }
    if input.customer.as_deref().is_some_and(|c| !is_stripe_id(c)) {
        return Err("customer must be a Stripe Customer id ([A-Za-z0-9_])".to_owned());
    }
    if let Some(checkout_id) = &input.checkout_id {
        check_checkout_id(checkout_id)?;
    }
    if input.metadata.len() > MAX_METADATA_PAIRS {
        return Err(format!("metadata holds at most {MAX_METADATA_PAIRS} pairs"));
    }
    if let Some(reserved) = RESERVED_METADATA
        .iter()
        .find(|k| input.metadata.contains_key(**k))
    {
        return Err(format!("metadata.{reserved} is set by Keylease"));
    }
    if input
        .metadata
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > 40 || v.len() > 500)
    {
        return Err("metadata keys are 1-40 characters and values at most 500".to_owned());
    }
    let cap_usd = match (input.max_spend_usd, input.currency.as_str()) {
        (Some(cap), _) => {
            let cents = cap * 100.0;
            if !cap.is_finite() || cap < 0.0 || (cents - cents.round()).abs() > 1e-6 {
                return Err(
                    "max_spend_usd must be a USD amount of 0 or more in whole cents".to_owned(),
                );
            }
            cap
        }
        // The key can move this charge and nothing more.
        (None, "usd") => input.amount as f64 / 100.0,
        (None, _) => {
            return Err("max_spend_usd is required for currencies other than usd".to_owned());
        }
    };
    Ok(ValidCharge {
        input: input.clone(),
        cap_usd,
    })
}

impl ValidCharge {
    /// The form of `POST /v1/payment_intents`: identical on every attempt, so that Stripe replays it.
    pub fn form(&self, workflow_id: &str) -> Vec<(String, String)> {
        let input = &self.input;
        let capture = match input.capture {
            CaptureMode::Automatic => "automatic",
            CaptureMode::Manual => "manual",
        };
        let mut form = vec![
            ("amount".to_owned(), input.amount.to_string()),
            ("currency".to_owned(), input.currency.clone()),
            ("payment_method".to_owned(), input.payment_method.clone()),
            ("confirm".to_owned(), "true".to_owned()),
            // Stripe (since 2023-08-16) refuses to confirm without a return_url
            // unless redirect-based methods are ruled out; an agent cannot redirect.
            (
                "automatic_payment_methods[enabled]".to_owned(),
                "true".to_owned(),
            ),
            (
                "automatic_payment_methods[allow_redirects]".to_owned(),
                "never".to_owned(),
            ),
            ("capture_method".to_owned(), capture.to_owned()),
            ("metadata[order_id]".to_owned(), input.order_id.clone()),
            ("metadata[workflow_id]".to_owned(), workflow_id.to_owned()),
        ];
        // What a later checkout of the order finds it by, when the order id
        // itself cannot be searched for.
        if let ("order_key", key) = crate::scope::order_pair(&input.order_id) {
            form.push(("metadata[order_key]".to_owned(), key));
        }
        // What `reconcile` searches by when the charge's outcome is unknown.
        form.extend(
            input
                .checkout_id
                .iter()
                .map(|c| ("metadata[checkout_id]".to_owned(), c.clone())),
        );
        if let Some(customer) = &input.customer {
            // A saved customer's card is charged with nobody present to authenticate.
            form.push(("customer".to_owned(), customer.clone()));
            form.push(("off_session".to_owned(), "true".to_owned()));
        }
        form.extend(
            input
                .description
                .iter()
                .map(|d| ("description".to_owned(), d.clone())),
        );
        form.extend(
            input
                .metadata
                .iter()
                .map(|(k, v)| (format!("metadata[{k}]"), v.clone())),
        );
        form
    }
}

/// Checks a refund.
pub fn refund(input: &RefundInput) -> Result<(), String> {
    check_id("order_id", &input.order_id)?;
    if !input.payment_intent_id.starts_with("pi_")
        || input.payment_intent_id.chars().any(char::is_whitespace)
    {
        return Err("payment_intent_id must be a PaymentIntent id (pi_…)".to_owned());
    }
    if let Some(amount) = input.amount {
        check_amount(amount)?;
    }
    if let Some(refund_id) = &input.follow_refund_id
        && (!refund_id.starts_with("re_") || !is_stripe_id(refund_id))
    {
        return Err("follow_refund_id must be a Refund id (re_…)".to_owned());
    }
    match input.reason.as_deref() {
        None | Some("duplicate" | "fraudulent" | "requested_by_customer") => Ok(()),
        Some(_) => Err("reason must be duplicate, fraudulent or requested_by_customer".to_owned()),
    }
}

/// The form of `POST /v1/refunds`.
pub fn refund_form(input: &RefundInput, workflow_id: &str) -> Vec<(String, String)> {
    let mut form = vec![
        ("payment_intent".to_owned(), input.payment_intent_id.clone()),
        ("metadata[order_id]".to_owned(), input.order_id.clone()),
        ("metadata[workflow_id]".to_owned(), workflow_id.to_owned()),
    ];
    form.extend(input.amount.map(|a| ("amount".to_owned(), a.to_string())));
    form.extend(
        input
            .reason
            .iter()
            .map(|r| ("reason".to_owned(), r.clone())),
    );
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ChargeInput {
        ChargeInput {
            order_id: "o1".into(),
            amount: 1999,
            currency: "usd".into(),
            payment_method: "pm_card_visa".into(),
            customer: None,
            description: None,
            metadata: Default::default(),
            max_spend_usd: None,
            capture: CaptureMode::Automatic,
            schedule_to_close_ms: None,
            checkout_id: None,
            order_paid_since_ms: None,
        }
    }

    #[test]
    fn usd_charges_cap_at_their_own_amount() {
        assert_eq!(charge(&input()).unwrap().cap_usd, 19.99);
        let other = ChargeInput {
            max_spend_usd: Some(25.5),
            ..input()
        };
        assert_eq!(charge(&other).unwrap().cap_usd, 25.5);
    }

    #[test]
    fn bad_charges_are_refused_with_the_field() {
        let cases = [
            (
                "order_id",
                ChargeInput {
                    order_id: String::new(),
                    ..input()
                },
            ),
            (
                "amount",
                ChargeInput {
                    amount: 0,
                    ..input()
                },
            ),
            (
                "amount",
                ChargeInput {
                    amount: 100_000_000,
                    ..input()
                },
            ),
            (
                "currency",
                ChargeInput {
                    currency: "USD".into(),
                    ..input()
                },
            ),
            (
                "payment_method",
                ChargeInput {
                    payment_method: " ".into(),
                    ..input()
                },
            ),
            (
                "max_spend_usd",
                ChargeInput {
                    currency: "eur".into(),
                    ..input()
                },
            ),
            (
                "max_spend_usd",
                ChargeInput {
                    max_spend_usd: Some(-1.0),
                    ..input()
                },
            ),
            (
                "max_spend_usd",
                ChargeInput {
                    max_spend_usd: Some(1.005),
                    ..input()
                },
            ),
            (
                "metadata",
                ChargeInput {
                    metadata: [("order_id".into(), "x".into())].into(),
                    ..input()
                },
            ),
        ];
        for (field, bad) in cases {
            let err = charge(&bad).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn the_charge_form_is_stable() {
        let valid = charge(&ChargeInput {
            metadata: [("cart".into(), "c9".into())].into(),
            ..input()
        })
        .unwrap();
        let form = valid.form("wf-1");
        assert_eq!(form, valid.form("wf-1"));
        assert!(form.contains(&("metadata[workflow_id]".to_owned(), "wf-1".to_owned())));
        assert!(form.contains(&("metadata[cart]".to_owned(), "c9".to_owned())));
        assert!(form.contains(&("confirm".to_owned(), "true".to_owned())));
    }

    #[test]
    fn the_charge_confirms_as_stripe_accepts_it_without_a_return_url() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let anonymous = charge(&input()).unwrap().form("wf-1");
        assert!(anonymous.contains(&pair("automatic_payment_methods[enabled]", "true")));
        assert!(anonymous.contains(&pair("automatic_payment_methods[allow_redirects]", "never")));
        assert!(
            !anonymous.iter().any(|(k, _)| k == "off_session"),
            "no customer, no saved card"
        );
        let saved = charge(&ChargeInput {
            customer: Some("cus_1".into()),
            ..input()
        })
        .unwrap()
        .form("wf-1");
        assert!(saved.contains(&pair("customer", "cus_1")));
        assert!(saved.contains(&pair("off_session", "true")));
    }

    #[test]
    fn refunds_need_a_payment_intent_and_a_known_reason() {
        let good = RefundInput {
            order_id: "o1".into(),
            payment_intent_id: "pi_1".into(),
            amount: None,
            reason: Some("requested_by_customer".into()),
            schedule_to_close_ms: None,
            compensating_since_ms: None,
            follow_refund_id: None,
        };
        assert!(refund(&good).is_ok());
        assert!(
            refund(&RefundInput {
                payment_intent_id: "ch_1".into(),
                ..good.clone()
            })
            .is_err()
        );
        assert!(
            refund(&RefundInput {
                reason: Some("changed mind".into()),
                ..good.clone()
            })
            .is_err()
        );
        assert!(
            refund(&RefundInput {
                amount: Some(0),
                ..good.clone()
            })
            .is_err()
        );
        assert!(
            refund(&RefundInput {
                follow_refund_id: Some("re_1".into()),
                ..good.clone()
            })
            .is_ok()
        );
        assert!(
            refund(&RefundInput {
                follow_refund_id: Some("re_1/../pi_2".into()),
                ..good
            })
            .is_err()
        );
    }
}
