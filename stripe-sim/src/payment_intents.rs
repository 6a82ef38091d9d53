//! PaymentIntents: create and confirm, each only from the statuses Stripe
//! allows, with the `automatic_payment_methods` rules of the request's API
//! version. Capture, cancel, update and increment are in [`crate::pi_changes`].

use serde_json::{Value, json};

use crate::account::Account;
use crate::attempts::{decline_now, new_charge, settle_card};
use crate::cards::{AUTHENTICATION_REQUIRED, Outcome, TestMethod, test_method};
use crate::error::StripeError;
use crate::ids::new_id;
use crate::objects::{AutomaticPaymentMethods, Charge, PaymentIntent};
use crate::params::Params;
use crate::state::Ctx;
use crate::version::ApiVersion;

/// Largest amount Stripe accepts (in minor units, eight digits).
pub const MAX_AMOUNT: i64 = 99_999_999;

/// The methods the simulated Dashboard enables: what automatic payment methods offer.
const DASHBOARD_METHODS: [&str; 2] = ["card", "us_bank_account"];

/// Stripe's answer to confirming, without a `return_url`, a PaymentIntent that may redirect.
pub const RETURN_URL_REQUIRED: &str = "A `return_url` must be specified because this Payment Intent is configured to automatically accept the payment methods enabled in the Dashboard, some of which may require a full page redirect to succeed. If you do not want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.";

/// What a confirmation (on create or `/confirm`) brings.
#[derive(Debug, Clone, Default)]
pub struct Confirmation {
    payment_method: Option<String>,
    return_url: Option<String>,
    off_session: bool,
    error_on_requires_action: bool,
}

/// A create request that passed validation.
#[derive(Debug, Clone)]
pub struct NewPaymentIntent {
    pi: Box<PaymentIntent>,
    confirm: Option<Confirmation>,
}

/// Checks a payment method names a test method; `None` passes.
pub fn check_payment_method(params: &Params) -> Result<Option<String>, StripeError> {
    match params.string("payment_method")? {
        Some(pm) if test_method(&pm).is_none() => Err(StripeError::resource_missing(
            "payment_method",
            "PaymentMethod",
            &pm,
        )),
        other => Ok(other),
    }
}

/// Validates an amount: at least 1, at most eight digits.
pub fn check_amount(amount: i64, param: &str) -> Result<i64, StripeError> {
    if amount < 1 {
        return Err(StripeError::invalid_with_code(
            "amount_too_small",
            Some(param),
            "Amount must be at least 1.",
        ));
    }
    if amount > MAX_AMOUNT {
        return Err(StripeError::invalid_with_code(
            "amount_too_large",
            Some(param),
            format!("Amount must be no more than {MAX_AMOUNT}."),
        ));
    }
    Ok(amount)
}

/// Validates `currency`, lowercased: one Stripe takes.
pub fn check_currency(params: &Params) -> Result<Option<String>, StripeError> {
    params
        .string("currency")?
        .map(|currency| crate::currencies::check(&currency, "currency"))
        .transpose()
}

/// `payment_method_options`, as given, with the card option the simulator acts on checked.
pub fn payment_method_options(params: &Params) -> Result<Option<Value>, StripeError> {
    let Some(options) = params.raw("payment_method_options") else {
        return Ok(None);
    };
    let incremental = &options["card"]["request_incremental_authorization"];
    if !incremental.is_null() && !matches!(incremental.as_str(), Some("if_available" | "never")) {
        return Err(StripeError::invalid(
            "payment_method_options[card][request_incremental_authorization]",
            "Invalid payment_method_options[card][request_incremental_authorization]: must be one of if_available, never",
        ));
    }
    Ok(Some(options.clone()))
}

/// The parameters Stripe lets only a confirming request carry.
fn confirmation(params: &Params, confirming: bool) -> Result<Option<Confirmation>, StripeError> {
    let off_session = match params.string("off_session")?.as_deref() {
        None | Some("false") => false,
        Some("true" | "one_off" | "recurring") => true,
        Some(_) => {
            return Err(StripeError::invalid(
                "off_session",
                "Invalid off_session: must be true, false, one_off or recurring",
            ));
        }
    };
    let confirmation = Confirmation {
        payment_method: check_payment_method(params)?,
        return_url: params.string("return_url")?,
        off_session,
        error_on_requires_action: params.boolean("error_on_requires_action")?.unwrap_or(false),
    };
    if !confirming {
        for (param, given) in [
            ("return_url", confirmation.return_url.is_some()),
            ("off_session", params.raw("off_session").is_some()),
            (
                "error_on_requires_action",
                params.raw("error_on_requires_action").is_some(),
            ),
        ] {
            if given {
                return Err(StripeError::invalid_request_param(
                    param,
                    format!("`{param}` can only be used with `confirm=true`."),
                ));
            }
        }
        return Ok(None);
    }
    Ok(Some(confirmation))
}

/// `automatic_payment_methods` and `payment_method_types` from the request and the version's default.
fn payment_methods(
    params: &Params,
    version: ApiVersion,
) -> Result<(Option<AutomaticPaymentMethods>, Vec<String>), StripeError> {
    let list_param = version.method_list_param();
    let list = params.list(list_param)?;
    let automatic = match params
        .nested("automatic_payment_methods", &["enabled", "allow_redirects"])?
    {
        None => None,
        Some(apm) => {
            let enabled = apm
                .boolean("enabled")
                .map_err(|_| {
                    StripeError::invalid(
                        "automatic_payment_methods[enabled]",
                        "Invalid boolean: automatic_payment_methods[enabled] must be true or false",
                    )
                })?
                .ok_or_else(|| StripeError::missing("automatic_payment_methods[enabled]"))?;
            let allow_redirects = apm.one_of("allow_redirects", &["always", "never"]).map_err(|_| {
                    StripeError::invalid(
                        "automatic_payment_methods[allow_redirects]",
                        "Invalid automatic_payment_methods[allow_redirects]: must be one of always, never",
                    )
                })?;
            Some(AutomaticPaymentMethods {
                enabled,
                allow_redirects: allow_redirects.or(enabled.then(|| "always".to_owned())),
            })
        }
    };
    match (automatic, list) {
        (Some(apm), Some(_)) if apm.enabled => Err(StripeError::invalid_request_param(
            "automatic_payment_methods",
            format!(
                "You may only specify one of these parameters: automatic_payment_methods, {list_param}."
            ),
        )),
        (_, Some(list)) if list.is_empty() => Err(StripeError::invalid(
            list_param,
            format!("Invalid {list_param}: must not be empty"),
        )),
        (_, Some(list)) => Ok((None, list)),
        (Some(apm), None) if apm.enabled => {
            Ok((Some(apm), DASHBOARD_METHODS.map(str::to_owned).to_vec()))
        }
        (None, None) if version.automatic_payment_methods_by_default() => Ok((
            Some(AutomaticPaymentMethods {
                enabled: true,
                allow_redirects: Some("always".to_owned()),
            }),
            DASHBOARD_METHODS.map(str::to_owned).to_vec(),
        )),
        _ => Ok((None, vec!["card".to_owned()])),
    }
}

fn string_field(params: &Params, name: &str) -> Result<Option<String>, StripeError> {
    params.string(name)
}

/// Validates `POST /v1/payment_intents`.
pub fn validate_create(params: &Params, ctx: &Ctx) -> Result<NewPaymentIntent, StripeError> {
    let amount = check_amount(
        params
            .integer("amount")?
            .ok_or_else(|| StripeError::missing("amount"))?,
        "amount",
    )?;
    let currency = check_currency(params)?.ok_or_else(|| StripeError::missing("currency"))?;
    let amount = crate::currencies::check_minimum(amount, &currency, "amount")?;
    let confirming = params.boolean("confirm")?.unwrap_or(false);
    let confirm = confirmation(params, confirming)?;
    let (automatic_payment_methods, payment_method_types) = payment_methods(params, ctx.version)?;
    let default_capture = if ctx.version.automatic_async_by_default() {
        "automatic_async"
    } else {
        "automatic"
    };
    let id = new_id("pi");
    let payment_method = check_payment_method(params)?;
    let pi = PaymentIntent {
        client_secret: format!("{id}_secret_{}", &new_id("s")[2..]),
        id,
        object: "payment_intent",
        amount,
        amount_capturable: 0,
        amount_details: json!({ "tip": {} }),
        amount_received: 0,
        application: None,
        application_fee_amount: params.integer("application_fee_amount")?,
        payment_method_configuration_details: automatic_payment_methods
            .as_ref()
            .map(|_| json!({ "id": "pmc_sim_default", "parent": null })),
        automatic_payment_methods,
        canceled_at: None,
        cancellation_reason: None,
        capture_method: params
            .one_of(
                "capture_method",
                &["automatic", "automatic_async", "manual"],
            )?
            .unwrap_or_else(|| default_capture.to_owned()),
        confirmation_method: params
            .one_of("confirmation_method", &["automatic", "manual"])?
            .unwrap_or_else(|| "automatic".to_owned()),
        created: ctx.now(),
        currency,
        customer: string_field(params, "customer")?,
        customer_account: string_field(params, "customer_account")?,
        description: string_field(params, "description")?,
        excluded_payment_method_types: params.list("excluded_payment_method_types")?,
        last_payment_error: None,
        latest_charge: None,
        livemode: false,
        managed_payments: None,
        metadata: params.metadata()?,
        next_action: None,
        on_behalf_of: string_field(params, "on_behalf_of")?,
        status: if payment_method.is_some() {
            "requires_confirmation"
        } else {
            "requires_payment_method"
        },
        payment_method,
        payment_method_options: payment_method_options(params)?.unwrap_or_else(|| json!({})),
        payment_method_types,
        processing: None,
        receipt_email: string_field(params, "receipt_email")?,
        review: None,
        setup_future_usage: params.one_of("setup_future_usage", &["on_session", "off_session"])?,
        shipping: params.raw("shipping").cloned(),
        source: None,
        statement_descriptor: string_field(params, "statement_descriptor")?,
        statement_descriptor_suffix: string_field(params, "statement_descriptor_suffix")?,
        transfer_data: params.raw("transfer_data").cloned(),
        transfer_group: string_field(params, "transfer_group")?,
        return_url: None,
        searchable_at_ms: ctx.now_ms + ctx.search_delay_ms,
    };
    Ok(NewPaymentIntent {
        pi: Box::new(pi),
        confirm,
    })
}

/// Creates the PaymentIntent, confirming it when asked; returns its id.
pub fn create(
    account: &mut Account,
    new: NewPaymentIntent,
    ctx: &Ctx,
) -> Result<String, StripeError> {
    let id = new.pi.id.clone();
    // A create that could never confirm creates nothing, as on Stripe.
    if let Some(confirmation) = &new.confirm
        && let Some(pm) = confirmation
            .payment_method
            .as_ref()
            .or(new.pi.payment_method.as_ref())
    {
        check_confirmable(&new.pi, pm, confirmation)?;
    }
    account.payment_intents.push(*new.pi);
    if let Some(confirmation) = new.confirm {
        confirm(account, &id, confirmation, ctx)?;
    }
    Ok(id)
}

/// Validates `POST /v1/payment_intents/{id}/confirm`.
pub fn validate_confirm(
    params: &Params,
) -> Result<(Confirmation, Option<Value>, Option<String>), StripeError> {
    let confirmation = confirmation(params, true)?.unwrap_or_default();
    let capture_method = params.one_of(
        "capture_method",
        &["automatic", "automatic_async", "manual"],
    )?;
    Ok((
        confirmation,
        payment_method_options(params)?,
        capture_method,
    ))
}

/// 400 `payment_intent_unexpected_state` about `pi`.
pub(crate) fn unexpected(pi: &PaymentIntent, message: String) -> StripeError {
    StripeError::unexpected_state(message, json!(pi))
}

/// Confirms: checks Stripe's rules, then does what the payment method does.
pub fn confirm(
    account: &mut Account,
    id: &str,
    confirmation: Confirmation,
    ctx: &Ctx,
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if !matches!(
        pi.status,
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    ) {
        let message = format!(
            "You cannot confirm this PaymentIntent because it has a status of {}.",
            pi.status
        );
        return Err(unexpected(pi, message));
    }
    if let Some(pm) = confirmation.payment_method.clone() {
        pi.payment_method = Some(pm);
    }
    let Some(pm) = pi.payment_method.clone() else {
        let message = "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent with a PaymentMethod, pass `payment_method`.".to_owned();
        return Err(unexpected(pi, message));
    };
    let method = check_confirmable(pi, &pm, &confirmation)?;
    if confirmation.return_url.is_some() {
        pi.return_url = confirmation.return_url;
    }
    pi.last_payment_error = None;
    pi.next_action = None;
    match method.outcome {
        Outcome::Succeeds => settle_card(account, id, &pm, &method, false, ctx),
        Outcome::Declined(decline) => Err(decline_now(account, id, &pm, &method, &decline, ctx)),
        Outcome::RequiresAuthentication
            if confirmation.off_session || confirmation.error_on_requires_action =>
        {
            Err(decline_now(
                account,
                id,
                &pm,
                &method,
                &AUTHENTICATION_REQUIRED,
                ctx,
            ))
        }
        Outcome::RequiresAuthentication => {
            pi.status = "requires_action";
            pi.next_action = Some(match &pi.return_url {
                Some(return_url) => json!({
                    "type": "redirect_to_url",
                    "redirect_to_url": { "return_url": return_url, "url": format!("https://hooks.stripe.com/3d_secure_2/hosted?payment_intent={id}&payment_intent_client_secret={}", pi.client_secret) },
                }),
                None => json!({
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": { "type": "stripe_3ds2_fingerprint", "three_d_secure_2_source": format!("payatt_{}", &new_id("x")[2..]) },
                }),
            });
            Ok(())
        }
        Outcome::Processing => {
            let charge = new_charge(pi, &pm, &method, None, false, ctx);
            pi.status = "processing";
            pi.latest_charge = Some(charge.id.clone());
            account.charges.push(Charge {
                status: "pending",
                paid: false,
                captured: true,
                amount_captured: charge.amount,
                ..charge
            });
            Ok(())
        }
    }
}

/// Stripe's checks before a confirmation does anything: the method is one
/// the PaymentIntent takes, and a `return_url` is there if it may redirect.
fn check_confirmable(
    pi: &PaymentIntent,
    pm: &str,
    confirmation: &Confirmation,
) -> Result<TestMethod, StripeError> {
    let method = test_method(pm)
        .ok_or_else(|| StripeError::resource_missing("payment_method", "PaymentMethod", pm))?;
    if !pi.payment_method_types.iter().any(|t| t == method.kind) {
        return Err(StripeError::invalid_request_param(
            "payment_method",
            format!(
                "The PaymentMethod provided ({}) is not allowed for this PaymentIntent. Try again with a PaymentMethod of one of the following types: {}.",
                method.kind,
                pi.payment_method_types.join(", ")
            ),
        ));
    }
    let may_redirect = pi
        .automatic_payment_methods
        .as_ref()
        .is_some_and(AutomaticPaymentMethods::may_redirect);
    if may_redirect && confirmation.return_url.is_none() && pi.return_url.is_none() {
        return Err(StripeError::invalid_request(RETURN_URL_REQUIRED));
    }
    Ok(method)
}
