//! The currencies Stripe takes, and the smallest amount it charges in each.
//!
//! The list is the one Stripe's own refusal names ("Invalid currency: …
//! Stripe currently supports these currencies: usd, aed, …"); the minimums
//! are Stripe's "Minimum and maximum charge amounts" table (docs.stripe.com/currencies),
//! in minor units. For a currency outside that table Stripe converts to the
//! account's settlement currency to compare; the simulator asks for 1 minor unit.

use crate::error::StripeError;

/// Every currency Stripe accepts, lowercase, in the order Stripe lists them.
const SUPPORTED: [&str; 148] = [
    "usd", "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd",
    "bdt", "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp",
    "etb", "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl",
    "hrk", "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr",
    "kmf", "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga",
    "mkd", "mmk", "mnt", "mop", "mro", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn",
    "nio", "nok", "npr", "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar",
    "ron", "rsd", "rub", "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sll", "sos", "srd",
    "std", "szl", "thb", "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "uyu",
    "uzs", "vnd", "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw", "usdc", "ghs",
    "eek", "lvl", "svc", "vef", "ltl",
];

/// Stripe's minimum charge by currency, in minor units.
const MINIMUMS: [(&str, i64); 24] = [
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

/// Currencies without minor units: their amounts are whole units.
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// `currency` lowercased if Stripe takes it, else Stripe's 400 naming `param`.
pub fn check(currency: &str, param: &str) -> Result<String, StripeError> {
    let currency = currency.to_ascii_lowercase();
    if SUPPORTED.contains(&currency.as_str()) {
        return Ok(currency);
    }
    Err(StripeError::invalid_request_param(
        param,
        format!(
            "Invalid currency: {currency}. Stripe currently supports these currencies: {}",
            SUPPORTED.join(", ")
        ),
    ))
}

/// Refuses an amount under Stripe's minimum charge in `currency` with
/// `amount_too_small` naming `param`.
pub fn check_minimum(amount: i64, currency: &str, param: &str) -> Result<i64, StripeError> {
    let minimum = MINIMUMS
        .iter()
        .find(|(c, _)| *c == currency)
        .map_or(1, |(_, m)| *m);
    if amount >= minimum {
        return Ok(amount);
    }
    let shown = if ZERO_DECIMAL.contains(&currency) {
        minimum.to_string()
    } else {
        format!("{}.{:02}", minimum / 100, minimum % 100)
    };
    let symbol = match currency {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        _ => "",
    };
    Err(StripeError::invalid_with_code(
        "amount_too_small",
        Some(param),
        format!("Amount must be at least {symbol}{shown} {currency}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_stripes_currencies_and_minimums() {
        assert_eq!(check("EUR", "currency").unwrap(), "eur");
        let refused = check("zzz", "currency").unwrap_err().response();
        assert_eq!(refused.body["error"]["param"], "currency");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid currency: zzz. Stripe currently supports these currencies: usd, aed, afn")
        );
        assert!(MINIMUMS.iter().all(|(c, _)| SUPPORTED.contains(c)));
        assert!(ZERO_DECIMAL.iter().all(|c| SUPPORTED.contains(c)));
        let small = check_minimum(49, "usd", "amount").unwrap_err().response();
        assert_eq!(
            small.body["error"]["message"],
            "Amount must be at least $0.50 usd"
        );
        assert_eq!(
            check_minimum(49, "jpy", "amount")
                .unwrap_err()
                .response()
                .body["error"]["message"],
            "Amount must be at least ¥50 jpy"
        );
        assert_eq!(check_minimum(50, "usd", "amount").unwrap(), 50);
        assert_eq!(check_minimum(1, "isk", "amount").unwrap(), 1);
    }
}
