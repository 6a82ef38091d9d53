//! Stripe's request parameters as the broker reads them: which name objects
//! (always, or by the shape of their value), which hold free text, and the
//! amount and currency of a request that moves money.

use super::ids::{is_test_payment_method, looks_like_id, object_in_path};
use crate::error::ApiError;
use crate::form::FormParams;

/// Parameters whose value names an object the key must own (or, for
/// accounts, be issued for): what it pays with, whom it charges, where the
/// money goes.
const OBJECT_PARAMS: [&str; 10] = [
    "payment_intent",
    "charge",
    "customer",
    "payment_method",
    "source",
    "mandate",
    "setup_intent",
    "on_behalf_of",
    "destination",
    "transfer_data[destination]",
];

/// Parameters that say where a page of a list or search starts.
const CURSORS: [&str; 3] = ["starting_after", "ending_before", "page"];

/// Largest amount in minor units the broker reads: Stripe's own limit is 8 digits.
const MAX_AMOUNT_DIGITS: usize = 12;

/// The whole number of minor units in parameter `name`, if given.
pub fn amount_param(params: &FormParams, name: &str) -> Result<Option<i64>, ApiError> {
    match params.scalar(name) {
        Some(text)
            if !text.is_empty()
                && text.len() <= MAX_AMOUNT_DIGITS
                && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(text.parse().ok())
        }
        None if !params.has(name) => Ok(None),
        _ => Err(ApiError::BadParameter(format!(
            "parameter `{name}` must be a whole number of minor units"
        ))),
    }
}

/// The three-letter currency of `currency`, lowercased, if given.
pub fn currency_param(params: &FormParams) -> Result<Option<String>, ApiError> {
    match params.scalar("currency") {
        Some(text) if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(text.to_ascii_lowercase()))
        }
        None if !params.has("currency") => Ok(None),
        _ => Err(ApiError::BadParameter(
            "parameter `currency` must be a three-letter currency code".to_owned(),
        )),
    }
}

// The top-level parameters of each valued call: Stripe's for the call at API
// version 2023-08-16 and at the version the activities pin
// (2026-10-28.endive; both in `../shared/stripe`), less those that change
// what the call moves in ways its valuation does not read:
// `amount_to_confirm`, `amount_details` (tips, surcharges), `hooks` (tax
// calculations) and `payment_details`.

/// The parameters of `POST /v1/payment_intents`.
pub const CREATE_PAYMENT_INTENT: [&str; 35] = [
    "allowed_payment_method_types",
    "amount",
    "application_fee_amount",
    "automatic_payment_methods",
    "capture_method",
    "confirm",
    "confirmation_method",
    "confirmation_token",
    "currency",
    "customer",
    "customer_account",
    "description",
    "error_on_requires_action",
    "excluded_payment_method_types",
    "expand",
    "mandate",
    "mandate_data",
    "metadata",
    "off_session",
    "on_behalf_of",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "radar_options",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
    "use_stripe_sdk",
];

/// The parameters of `POST /v1/payment_intents/{id}`.
pub const UPDATE_PAYMENT_INTENT: [&str; 23] = [
    "allowed_payment_method_types",
    "amount",
    "application_fee_amount",
    "capture_method",
    "currency",
    "customer",
    "customer_account",
    "description",
    "excluded_payment_method_types",
    "expand",
    "metadata",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "receipt_email",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
];

/// The parameters of `POST /v1/payment_intents/{id}/confirm`.
pub const CONFIRM_PAYMENT_INTENT: [&str; 20] = [
    "allowed_payment_method_types",
    "capture_method",
    "client_secret",
    "confirmation_token",
    "error_on_requires_action",
    "excluded_payment_method_types",
    "expand",
    "mandate",
    "mandate_data",
    "off_session",
    "payment_method",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "radar_options",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "shipping",
    "use_stripe_sdk",
];

/// The parameters of `POST /v1/payment_intents/{id}/capture`.
pub const CAPTURE_PAYMENT_INTENT: [&str; 8] = [
    "amount_to_capture",
    "application_fee_amount",
    "expand",
    "final_capture",
    "metadata",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
];

/// The parameters of `POST /v1/payment_intents/{id}/increment_authorization`.
pub const INCREMENT_AUTHORIZATION: [&str; 7] = [
    "amount",
    "application_fee_amount",
    "description",
    "expand",
    "metadata",
    "statement_descriptor",
    "transfer_data",
];

/// The parameters of `POST /v1/charges`.
pub const CREATE_CHARGE: [&str; 20] = [
    "amount",
    "application_fee",
    "application_fee_amount",
    "capture",
    "card",
    "currency",
    "customer",
    "description",
    "destination",
    "expand",
    "metadata",
    "on_behalf_of",
    "radar_options",
    "receipt_email",
    "shipping",
    "source",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
];

/// The parameters of `POST /v1/charges/{id}/capture`.
pub const CAPTURE_CHARGE: [&str; 9] = [
    "amount",
    "application_fee",
    "application_fee_amount",
    "expand",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
];

/// Parameters of free text, never an object: a value there may look like an id.
const FREE_TEXT: [&str; 12] = [
    "description",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
    "shipping",
    "return_url",
    "receipt_email",
    "name",
    "email",
    "phone",
    "address",
    "reason",
];

/// Whether a parameter holds the caller's own text: `metadata[…]` at any depth, or free text.
fn is_free_text(name: &str) -> bool {
    let base = name.split('[').next().unwrap_or(name);
    name.starts_with("metadata[") || name.contains("[metadata]") || FREE_TEXT.contains(&base)
}

/// The objects a request names: in its path, in the parameters that always
/// name one, and any other parameter (metadata aside) whose value is shaped
/// like a Stripe id: a confirmation token, an account, a card, a default
/// payment method nested in settings are all objects too, and a list of
/// every such parameter would always be missing the next one.
pub fn named_objects<'a>(
    method: &str,
    path: &'a str,
    params: &'a FormParams,
) -> Result<Vec<&'a str>, ApiError> {
    let mut named: Vec<&str> = object_in_path(path).into_iter().collect();
    // On a list or search of the account, a cursor (`starting_after`,
    // `ending_before`, search's opaque `page`) marks a place, not an object
    // to act on: what it leads to is filtered like the first page.
    let lists = method == "GET" && object_in_path(path).is_none();
    for (name, value) in params.pairs() {
        if lists && CURSORS.contains(&name) {
            continue;
        }
        if !is_free_text(name) && looks_like_id(value) && !is_test_payment_method(value) {
            named.push(value);
        }
    }
    for name in OBJECT_PARAMS {
        match params.scalar(name) {
            Some(id) if name == "payment_method" && is_test_payment_method(id) => {}
            Some(id) => named.push(id),
            None if params.has(name) => {
                return Err(ApiError::BadParameter(format!(
                    "parameter `{name}` must be a single object id"
                )));
            }
            None => {}
        }
    }
    Ok(named)
}
