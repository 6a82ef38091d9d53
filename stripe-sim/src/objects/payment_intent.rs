//! The PaymentIntent object.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// `automatic_payment_methods`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AutomaticPaymentMethods {
    /// Whether the Dashboard's payment methods are used.
    pub enabled: bool,
    /// `always` or `never`; `always` needs a `return_url` to confirm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_redirects: Option<String>,
}

impl AutomaticPaymentMethods {
    /// Whether confirming may redirect, so that Stripe wants a `return_url`.
    pub fn may_redirect(&self) -> bool {
        self.enabled && self.allow_redirects.as_deref() != Some("never")
    }
}

/// A PaymentIntent.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentIntent {
    /// `pi_…`.
    pub id: String,
    /// Always `payment_intent`.
    pub object: &'static str,
    /// Amount in minor units.
    pub amount: i64,
    /// What may still be captured (manual capture).
    pub amount_capturable: i64,
    /// Always `{"tip": {}}`.
    pub amount_details: Value,
    /// What was captured.
    pub amount_received: i64,
    /// Connect application: never set here.
    pub application: Option<String>,
    /// As given.
    pub application_fee_amount: Option<i64>,
    /// Set when no method list was given on versions since 2023-08-16, or when asked.
    pub automatic_payment_methods: Option<AutomaticPaymentMethods>,
    /// Unix seconds.
    pub canceled_at: Option<i64>,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// `automatic`, `automatic_async` or `manual`.
    pub capture_method: String,
    /// `pi_…_secret_…`.
    pub client_secret: String,
    /// `automatic` or `manual`.
    pub confirmation_method: String,
    /// Unix seconds.
    pub created: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// `cus_…`, as given.
    pub customer: Option<String>,
    /// As given.
    pub customer_account: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// As given.
    pub excluded_payment_method_types: Option<Vec<String>>,
    /// The error of the last failed confirmation.
    pub last_payment_error: Option<Value>,
    /// The latest charge (`ch_…`); `expand[]=latest_charge` shows the object.
    pub latest_charge: Option<String>,
    /// Always false.
    pub livemode: bool,
    /// Managed Payments: not modelled.
    pub managed_payments: Option<Value>,
    /// The caller's pairs.
    pub metadata: BTreeMap<String, String>,
    /// What the customer must do (`requires_action`).
    pub next_action: Option<Value>,
    /// As given.
    pub on_behalf_of: Option<String>,
    /// `pm_…`.
    pub payment_method: Option<String>,
    /// Payment method configuration: set with automatic payment methods.
    pub payment_method_configuration_details: Option<Value>,
    /// As given, with `card.request_incremental_authorization` read.
    pub payment_method_options: Value,
    /// The methods it may be paid with.
    pub payment_method_types: Vec<String>,
    /// `{"type": …}` while `processing`.
    pub processing: Option<Value>,
    /// As given.
    pub receipt_email: Option<String>,
    /// Radar review: never.
    pub review: Option<String>,
    /// `on_session` or `off_session`, as given.
    pub setup_future_usage: Option<String>,
    /// As given.
    pub shipping: Option<Value>,
    /// Legacy source: never.
    pub source: Option<String>,
    /// As given.
    pub statement_descriptor: Option<String>,
    /// As given.
    pub statement_descriptor_suffix: Option<String>,
    /// Stripe's PaymentIntent status.
    pub status: &'static str,
    /// As given.
    pub transfer_data: Option<Value>,
    /// As given.
    pub transfer_group: Option<String>,
    /// The `return_url` of the last confirmation.
    #[serde(skip)]
    pub return_url: Option<String>,
    /// Simulator clock, milliseconds: when search sees it.
    #[serde(skip)]
    pub searchable_at_ms: i64,
}

impl PaymentIntent {
    /// Whether `payment_method_options[card][request_incremental_authorization]` asked for it.
    pub fn incremental_authorization_requested(&self) -> bool {
        matches!(
            self.payment_method_options["card"]["request_incremental_authorization"].as_str(),
            Some("if_available" | "always")
        )
    }
}
