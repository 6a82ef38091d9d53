//! `Stripe-Version`: which API version a request is served at.
//!
//! Stripe names versions by date (`2023-08-16`); since `2024-09-30` a version
//! also carries the name of its major release (`2024-09-30.acacia`), and each
//! monthly release reuses the name of the last major one. Stripe refuses a
//! version it does not know with 400 `Invalid Stripe API version: …`. The
//! simulator knows every well-formed date from Stripe's first version to its
//! own default whose release name (if any) matches its date; it cannot tell a
//! date on which Stripe shipped nothing from one on which it did.

use crate::error::StripeError;

/// The version served when a request names none: the one Stripe's official
/// libraries at the time of `reference/params.json` pin.
pub const DEFAULT_VERSION: &str = "2026-10-28.endive";
/// [`DEFAULT_VERSION`]'s date: also the latest version the simulator knows.
const DEFAULT_DATE: (u16, u8, u8) = (2026, 10, 28);

/// Since this version a PaymentIntent created without a method list gets
/// `automatic_payment_methods[enabled]=true` (Stripe's changelog, 2023-08-16).
const AUTOMATIC_PAYMENT_METHODS_DEFAULT: (u16, u8, u8) = (2023, 8, 16);

/// Since this version a PaymentIntent's default `capture_method` is
/// `automatic_async` (Stripe's changelog, 2024-06-20).
const AUTOMATIC_ASYNC_DEFAULT: (u16, u8, u8) = (2024, 6, 20);

/// Since this major release the create parameter `payment_method_types` is
/// `allowed_payment_method_types` (as `reference/params.json` has it).
const ALLOWED_PAYMENT_METHOD_TYPES: (u16, u8, u8) = (2026, 9, 30);

/// Major releases with a name, from their first day.
const RELEASES: [((u16, u8, u8), &str); 5] = [
    ((2024, 9, 30), "acacia"),
    ((2025, 3, 31), "basil"),
    ((2025, 9, 30), "clover"),
    ((2026, 3, 25), "dahlia"),
    ((2026, 9, 30), "endive"),
];

/// An API version Stripe knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    date: (u16, u8, u8),
}

impl Default for ApiVersion {
    fn default() -> Self {
        // The constant is well formed; the unit test below checks it parses.
        Self::parse(DEFAULT_VERSION).unwrap_or(Self { date: DEFAULT_DATE })
    }
}

impl ApiVersion {
    /// The version of a `Stripe-Version` header, or Stripe's error.
    pub fn from_header(value: Option<&str>) -> Result<Self, StripeError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::default()),
            Some(text) => Self::parse(text).ok_or_else(|| {
                StripeError::invalid_request(format!("Invalid Stripe API version: {text}"))
            }),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (date, name) = match text.split_once('.') {
            Some((date, name)) => (date, Some(name)),
            None => (text, None),
        };
        let mut parts = date.split('-');
        let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
            return None;
        }
        let date = (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
        if !valid_date(date) || date < (2011, 1, 1) || date > DEFAULT_DATE {
            return None;
        }
        let release = RELEASES
            .iter()
            .rev()
            .find(|(since, _)| date >= *since)
            .map(|(_, name)| *name);
        (name == release).then_some(Self { date })
    }

    /// Whether PaymentIntents default to automatic payment methods.
    pub fn automatic_payment_methods_by_default(self) -> bool {
        self.date >= AUTOMATIC_PAYMENT_METHODS_DEFAULT
    }

    /// Whether `capture_method` defaults to `automatic_async`.
    pub fn automatic_async_by_default(self) -> bool {
        self.date >= AUTOMATIC_ASYNC_DEFAULT
    }

    /// The name of the create/update/confirm parameter listing allowed methods.
    pub fn method_list_param(self) -> &'static str {
        if self.date >= ALLOWED_PAYMENT_METHOD_TYPES {
            "allowed_payment_method_types"
        } else {
            "payment_method_types"
        }
    }
}

fn valid_date((year, month, day): (u16, u8, u8)) -> bool {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_dated_and_named_versions() {
        assert_eq!(
            ApiVersion::default(),
            ApiVersion::parse(DEFAULT_VERSION).unwrap()
        );
        for known in [
            "2020-08-27",
            "2023-08-16",
            "2024-06-20",
            "2024-09-30.acacia",
            "2025-03-31.basil",
            "2026-04-22.dahlia",
        ] {
            assert!(ApiVersion::parse(known).is_some(), "{known}");
        }
        for unknown in [
            "2019-2-19",
            "2024-10-28",
            "2022-11-15.acacia",
            "2025-03-31.acacia",
            "2099-01-01.zinnia",
            "2023-02-30",
            "latest",
            "2020-08-27;link_beta=v1",
        ] {
            assert!(ApiVersion::parse(unknown).is_none(), "{unknown}");
        }
        let error = ApiVersion::from_header(Some("2019-2-19"))
            .unwrap_err()
            .response();
        assert_eq!(error.status, 400);
        assert_eq!(
            error.body["error"]["message"],
            "Invalid Stripe API version: 2019-2-19"
        );
    }

    #[test]
    fn rules_change_with_the_version() {
        let old = ApiVersion::parse("2022-11-15").unwrap();
        let new = ApiVersion::parse("2023-08-16").unwrap();
        assert!(!old.automatic_payment_methods_by_default());
        assert!(new.automatic_payment_methods_by_default());
        assert_eq!(new.method_list_param(), "payment_method_types");
        assert_eq!(
            ApiVersion::default().method_list_param(),
            "allowed_payment_method_types"
        );
    }
}
