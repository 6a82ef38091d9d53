//! Turning a Stripe amount into the USD it moves, for the spend cap.
//!
//! Amounts are counted in micro-dollars (1e-6 USD) so that caps in cents and
//! converted amounts add up exactly in integers.

use crate::config::UsdRates;

/// Micro-dollars in one US dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies Stripe counts in thousandths.
const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// Why an amount could not be valued in USD.
#[derive(Debug, PartialEq, Eq)]
pub enum ValuationError {
    /// Not a USD currency and no rate is configured for it.
    NoRate(String),
}

/// The USD value, in micro-dollars rounded up, of `amount` minor units of `currency`.
pub fn usd_micros(amount: i64, currency: &str, rates: &UsdRates) -> Result<i64, ValuationError> {
    let currency = currency.to_ascii_lowercase();
    if currency == "usd" {
        return Ok(amount.saturating_mul(MICROS_PER_USD / 100));
    }
    let rate = *rates
        .0
        .get(&currency)
        .ok_or_else(|| ValuationError::NoRate(currency.clone()))?;
    let minor_per_major = if ZERO_DECIMAL.contains(&currency.as_str()) {
        1.0
    } else if THREE_DECIMAL.contains(&currency.as_str()) {
        1000.0
    } else {
        100.0
    };
    // Rounded up: a reservation may err high, never low. Amounts are at most
    // 8 digits, well inside f64's exact integer range.
    let micros = (amount as f64 / minor_per_major * rate * MICROS_PER_USD as f64).ceil();
    Ok(micros as i64)
}

/// Formats micro-dollars as a USD number for JSON.
pub fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_USD as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_usd_rates;

    #[test]
    fn usd_counts_cents() {
        let rates = UsdRates::default();
        assert_eq!(usd_micros(1000, "usd", &rates), Ok(10 * MICROS_PER_USD));
        assert_eq!(usd_micros(1, "USD", &rates), Ok(10_000));
    }

    #[test]
    fn other_currencies_need_a_rate() {
        let rates = parse_usd_rates("eur=1.08,jpy=0.0067,kwd=3.25").unwrap();
        assert_eq!(usd_micros(1000, "eur", &rates), Ok(10_800_000));
        // Zero-decimal: 1000 yen are 1000 whole units.
        assert_eq!(usd_micros(1000, "jpy", &rates), Ok(6_700_000));
        // Three-decimal: 1000 fils are one dinar.
        assert_eq!(usd_micros(1000, "kwd", &rates), Ok(3_250_000));
        assert_eq!(
            usd_micros(1000, "gbp", &rates),
            Err(ValuationError::NoRate("gbp".to_owned()))
        );
    }
}
