//! Stripe's test PaymentMethods (`pm_card_visa`, …) and what confirming with
//! each does, as Stripe's testing docs list them
//! (docs.stripe.com/testing: "Declined payments", and `pm_card_radarBlock`
//! from "Fraud prevention"). The `pm_card_chargeDeclined…` spellings without
//! `visa_` are the older names the simulator has always taken.

/// What confirming a PaymentIntent with a test PaymentMethod does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The payment goes through.
    Succeeds,
    /// The issuer refuses it.
    Declined(Decline),
    /// 3-D Secure: the customer must authenticate (`requires_action`); off
    /// session, where nobody can, it is declined `authentication_required`.
    RequiresAuthentication,
    /// A bank debit: the PaymentIntent waits in `processing` until it settles
    /// (`POST /_sim/payment_intents/{id}/settle`).
    Processing,
}

/// A refusal: Stripe's error code, decline code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decline {
    /// `card_declined`, `expired_card`, `incorrect_cvc`, `processing_error`, `authentication_required`.
    pub code: &'static str,
    /// The issuer's reason.
    pub decline_code: &'static str,
    /// Stripe's message for it.
    pub message: &'static str,
    /// The card field at fault, as Stripe names it (`exp_month`, `cvc`).
    pub param: Option<&'static str>,
}

const fn declined(
    code: &'static str,
    decline_code: &'static str,
    message: &'static str,
) -> Outcome {
    Outcome::Declined(Decline {
        code,
        decline_code,
        message,
        param: None,
    })
}

const fn declined_on(code: &'static str, message: &'static str, param: &'static str) -> Outcome {
    Outcome::Declined(Decline {
        code,
        decline_code: code,
        message,
        param: Some(param),
    })
}

/// The decline of a 3-D Secure card confirmed off session.
pub const AUTHENTICATION_REQUIRED: Decline = Decline {
    code: "authentication_required",
    decline_code: "authentication_required",
    message: "Your card was declined. This transaction requires authentication.",
    param: None,
};

/// A test PaymentMethod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestMethod {
    /// `card` or `us_bank_account`.
    pub kind: &'static str,
    /// Card brand (`visa`, …) or the bank's name.
    pub brand: &'static str,
    /// `credit`, `debit` (cards) or `checking` (bank accounts).
    pub funding: &'static str,
    /// Last four digits of the test number.
    pub last4: &'static str,
    /// What confirming with it does.
    pub outcome: Outcome,
}

const fn card(
    brand: &'static str,
    funding: &'static str,
    last4: &'static str,
    outcome: Outcome,
) -> TestMethod {
    TestMethod {
        kind: "card",
        brand,
        funding,
        last4,
        outcome,
    }
}

const DECLINED: &str = "Your card was declined.";

/// The test PaymentMethod `id`, or `None` for one Stripe does not have.
pub fn test_method(id: &str) -> Option<TestMethod> {
    use Outcome::*;
    let method = match id {
        "pm_card_visa" => card("visa", "credit", "4242", Succeeds),
        "pm_card_visa_debit" => card("visa", "debit", "5556", Succeeds),
        "pm_card_mastercard" => card("mastercard", "credit", "4444", Succeeds),
        "pm_card_amex" => card("amex", "credit", "8431", Succeeds),
        "pm_card_visa_chargeDeclined" | "pm_card_chargeDeclined" => card(
            "visa",
            "credit",
            "0002",
            declined("card_declined", "generic_decline", DECLINED),
        ),
        "pm_card_visa_chargeDeclinedInsufficientFunds"
        | "pm_card_chargeDeclinedInsufficientFunds" => card(
            "visa",
            "credit",
            "9995",
            declined(
                "card_declined",
                "insufficient_funds",
                "Your card has insufficient funds.",
            ),
        ),
        "pm_card_visa_chargeDeclinedLostCard" | "pm_card_chargeDeclinedLostCard" => card(
            "visa",
            "credit",
            "9987",
            declined("card_declined", "lost_card", DECLINED),
        ),
        "pm_card_visa_chargeDeclinedStolenCard" | "pm_card_chargeDeclinedStolenCard" => card(
            "visa",
            "credit",
            "9979",
            declined("card_declined", "stolen_card", DECLINED),
        ),
        "pm_card_visa_chargeDeclinedVelocityLimitExceeded" => card(
            "visa",
            "credit",
            "6975",
            declined(
                "card_declined",
                "card_velocity_exceeded",
                "Your card was declined for making repeated attempts too frequently or exceeding its amount limit.",
            ),
        ),
        "pm_card_radarBlock" | "pm_card_chargeDeclinedFraudulent" => card(
            "visa",
            "credit",
            "0019",
            declined("card_declined", "fraudulent", DECLINED),
        ),
        "pm_card_chargeDeclinedExpiredCard" => card(
            "visa",
            "credit",
            "0069",
            declined_on("expired_card", "Your card has expired.", "exp_month"),
        ),
        "pm_card_chargeDeclinedIncorrectCvc" => card(
            "visa",
            "credit",
            "0127",
            declined_on(
                "incorrect_cvc",
                "Your card's security code is incorrect.",
                "cvc",
            ),
        ),
        "pm_card_chargeDeclinedProcessingError" => card(
            "visa",
            "credit",
            "0119",
            declined(
                "processing_error",
                "processing_error",
                "An error occurred while processing your card. Try again in a little bit.",
            ),
        ),
        "pm_card_threeDSecure2Required" => card("visa", "credit", "3220", RequiresAuthentication),
        "pm_card_authenticationRequired" => card("visa", "credit", "3184", RequiresAuthentication),
        "pm_usBankAccount_success" => TestMethod {
            kind: "us_bank_account",
            brand: "STRIPE TEST BANK",
            funding: "checking",
            last4: "6789",
            outcome: Processing,
        },
        _ => return None,
    };
    Some(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_stripes_test_methods_only() {
        assert_eq!(
            test_method("pm_card_visa").unwrap().outcome,
            Outcome::Succeeds
        );
        assert!(matches!(
            test_method("pm_card_chargeDeclinedExpiredCard")
                .unwrap()
                .outcome,
            Outcome::Declined(Decline {
                code: "expired_card",
                ..
            })
        ));
        assert_eq!(
            test_method("pm_usBankAccount_success").unwrap().kind,
            "us_bank_account"
        );
        assert!(test_method("pm_card_nope").is_none());
    }
}
