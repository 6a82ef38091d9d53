//! `Stripe-Version`: which API version a request is served at.
//!
//! Stripe names versions by date (`2023-08-16`); since `2024-09-30` a version
//! also carries the name of its major release (`2024-09-30.acacia`), and each
//! monthly release reuses the name of the last major one. Stripe serves every
//! version it released ([`RELEASED`]) and refuses any other with 400
//! `Invalid Stripe API version: …`. One thing the simulator adds: a
//! well-formed version later than the newest it knows (a library newer than
//! the simulator) is served as that newest one, with a `Warning` header
//! saying so, rather than refused.

use crate::error::StripeError;

/// The version served when a request names none, as Stripe serves an
/// account's default: the one Keylease and `reference/params.json` pin.
pub const DEFAULT_VERSION: &str = "2026-10-28.endive";

/// Since this version a PaymentIntent created without a method list gets
/// `automatic_payment_methods[enabled]=true` (Stripe's changelog, 2023-08-16).
const AUTOMATIC_PAYMENT_METHODS_DEFAULT: (u16, u8, u8) = (2023, 8, 16);

/// Since this version a PaymentIntent's default `capture_method` is
/// `automatic_async` (Stripe's changelog, 2024-06-20).
const AUTOMATIC_ASYNC_DEFAULT: (u16, u8, u8) = (2024, 6, 20);

/// Since this major release the create parameter `payment_method_types` is
/// `allowed_payment_method_types` (as `reference/params.json` has it).
const ALLOWED_PAYMENT_METHOD_TYPES: (u16, u8, u8) = (2026, 9, 30);

/// Since this version a Charge no longer embeds its `refunds` list; it is
/// there only with `expand[]=refunds` (Stripe's changelog, 2022-11-15).
const CHARGE_REFUNDS_EXPANDABLE: (u16, u8, u8) = (2022, 11, 15);

/// Every version Stripe has released, oldest first: the `api_version` enum
/// of Stripe's spec as stripe-node 23.2.0 ships it
/// (`WebhookEndpointCreateParams.ApiVersion`), whose pinned version,
/// `2026-11-18.endive`, is the newest here.
const RELEASED: [&str; 130] = [
    "2011-01-01",
    "2011-06-21",
    "2011-06-28",
    "2011-08-01",
    "2011-09-15",
    "2011-11-17",
    "2012-02-23",
    "2012-03-25",
    "2012-06-18",
    "2012-06-28",
    "2012-07-09",
    "2012-09-24",
    "2012-10-26",
    "2012-11-07",
    "2013-02-11",
    "2013-02-13",
    "2013-07-05",
    "2013-08-12",
    "2013-08-13",
    "2013-10-29",
    "2013-12-03",
    "2014-01-31",
    "2014-03-13",
    "2014-03-28",
    "2014-05-19",
    "2014-06-13",
    "2014-06-17",
    "2014-07-22",
    "2014-07-26",
    "2014-08-04",
    "2014-08-20",
    "2014-09-08",
    "2014-10-07",
    "2014-11-05",
    "2014-11-20",
    "2014-12-08",
    "2014-12-17",
    "2014-12-22",
    "2015-01-11",
    "2015-01-26",
    "2015-02-10",
    "2015-02-16",
    "2015-02-18",
    "2015-03-24",
    "2015-04-07",
    "2015-06-15",
    "2015-07-07",
    "2015-07-13",
    "2015-07-28",
    "2015-08-07",
    "2015-08-19",
    "2015-09-03",
    "2015-09-08",
    "2015-09-23",
    "2015-10-01",
    "2015-10-12",
    "2015-10-16",
    "2016-02-03",
    "2016-02-19",
    "2016-02-22",
    "2016-02-23",
    "2016-02-29",
    "2016-03-07",
    "2016-06-15",
    "2016-07-06",
    "2016-10-19",
    "2017-01-27",
    "2017-02-14",
    "2017-04-06",
    "2017-05-25",
    "2017-06-05",
    "2017-08-15",
    "2017-12-14",
    "2018-01-23",
    "2018-02-05",
    "2018-02-06",
    "2018-02-28",
    "2018-05-21",
    "2018-07-27",
    "2018-08-23",
    "2018-09-06",
    "2018-09-24",
    "2018-10-31",
    "2018-11-08",
    "2019-02-11",
    "2019-02-19",
    "2019-03-14",
    "2019-05-16",
    "2019-08-14",
    "2019-09-09",
    "2019-10-08",
    "2019-10-17",
    "2019-11-05",
    "2019-12-03",
    "2020-03-02",
    "2020-08-27",
    "2022-08-01",
    "2022-11-15",
    "2023-08-16",
    "2023-10-16",
    "2024-04-10",
    "2024-06-20",
    "2024-09-30.acacia",
    "2024-10-28.acacia",
    "2024-11-20.acacia",
    "2024-12-18.acacia",
    "2025-01-27.acacia",
    "2025-02-24.acacia",
    "2025-03-01.dashboard",
    "2025-03-31.basil",
    "2025-04-30.basil",
    "2025-05-28.basil",
    "2025-06-30.basil",
    "2025-07-30.basil",
    "2025-08-27.basil",
    "2025-09-30.clover",
    "2025-10-29.clover",
    "2025-11-17.clover",
    "2025-12-15.clover",
    "2026-01-28.clover",
    "2026-02-25.clover",
    "2026-03-25.dahlia",
    "2026-04-22.dahlia",
    "2026-05-27.dahlia",
    "2026-06-24.dahlia",
    "2026-07-29.dahlia",
    "2026-08-26.dahlia",
    "2026-09-30.endive",
    "2026-10-28.endive",
    "2026-11-18.endive",
];

/// An API version Stripe released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    date: (u16, u8, u8),
    name: &'static str,
}

/// The version a request is served at, and, when it asked for a later one
/// than the simulator knows, the `Warning` to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The version the request is served at.
    pub version: ApiVersion,
    /// Set when the version asked for was served as [`ApiVersion::newest`].
    pub warning: Option<String>,
}

impl Default for ApiVersion {
    fn default() -> Self {
        // The unit test below checks the constant is in the table.
        Self::released(DEFAULT_VERSION).unwrap_or_else(Self::newest)
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl ApiVersion {
    /// The version of a `Stripe-Version` header, or Stripe's error.
    pub fn from_header(value: Option<&str>) -> Result<Served, StripeError> {
        let text = match value.map(str::trim) {
            None | Some("") => {
                return Ok(Served {
                    version: Self::default(),
                    warning: None,
                });
            }
            Some(text) => text,
        };
        if let Some(version) = Self::released(text) {
            return Ok(Served {
                version,
                warning: None,
            });
        }
        let newest = Self::newest();
        match well_formed(text) {
            Some(date) if date > newest.date => Ok(Served {
                version: newest,
                warning: Some(format!(
                    "299 stripe-sim \"Stripe-Version {text} is later than any this simulator knows; served as {newest}\""
                )),
            }),
            _ => Err(StripeError::invalid_request(format!(
                "Invalid Stripe API version: {text}"
            ))),
        }
    }

    /// The released version named exactly `text`.
    fn released(text: &str) -> Option<Self> {
        let name = RELEASED.iter().find(|v| **v == text)?;
        Some(Self {
            date: well_formed(name)?,
            name,
        })
    }

    /// The newest released version.
    pub fn newest() -> Self {
        let name = RELEASED[RELEASED.len() - 1];
        Self {
            date: well_formed(name).unwrap_or((9999, 12, 31)),
            name,
        }
    }

    /// Whether PaymentIntents default to automatic payment methods.
    pub fn automatic_payment_methods_by_default(self) -> bool {
        self.date >= AUTOMATIC_PAYMENT_METHODS_DEFAULT
    }

    /// Whether `capture_method` defaults to `automatic_async`.
    pub fn automatic_async_by_default(self) -> bool {
        self.date >= AUTOMATIC_ASYNC_DEFAULT
    }

    /// Whether a Charge embeds its `refunds` list without being asked to.
    pub fn charge_embeds_refunds(self) -> bool {
        self.date < CHARGE_REFUNDS_EXPANDABLE
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

/// The date of a version in Stripe's format, `YYYY-MM-DD` with an optional
/// `.name` of lowercase letters, or `None`.
fn well_formed(text: &str) -> Option<(u16, u8, u8)> {
    let (date, name) = match text.split_once('.') {
        Some((date, name)) => (date, Some(name)),
        None => (text, None),
    };
    if name.is_some_and(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_lowercase())) {
        return None;
    }
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(year, 4) || !digits(month, 2) || !digits(day, 2) {
        return None;
    }
    let date = (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    valid_date(date).then_some(date)
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

    fn served(text: &str) -> Result<Served, StripeError> {
        ApiVersion::from_header(Some(text))
    }

    #[test]
    fn serves_released_versions_and_refuses_others() {
        assert_eq!(ApiVersion::default().to_string(), DEFAULT_VERSION);
        assert!(
            RELEASED
                .windows(2)
                .all(|w| well_formed(w[0]) < well_formed(w[1]))
        );
        for known in [
            "2011-01-01",
            "2020-08-27",
            "2023-08-16",
            "2024-09-30.acacia",
            "2025-03-01.dashboard",
            "2026-04-22.dahlia",
            "2026-11-18.endive",
        ] {
            let served = served(known).unwrap();
            assert_eq!(
                (served.version.to_string(), served.warning),
                (known.to_owned(), None)
            );
        }
        for unknown in [
            "2019-2-19",
            "2024-10-28",
            "2024-10-29.acacia",
            "2022-11-15.acacia",
            "2025-03-31.acacia",
            "2026-11-18.fig",
            "2023-02-30",
            "2027-02-30.fig",
            "2027-01-01.Fig",
            "latest",
            "2020-08-27;link_beta=v1",
        ] {
            assert!(served(unknown).is_err(), "{unknown}");
        }
        let error = served("2019-2-19").unwrap_err().response();
        assert_eq!(error.status, 400);
        assert_eq!(
            error.body["error"]["message"],
            "Invalid Stripe API version: 2019-2-19"
        );
    }

    #[test]
    fn a_later_version_is_served_as_the_newest_with_a_warning() {
        for later in ["2027-01-27.fig", "2099-01-01", "2026-11-19.endive"] {
            let served = served(later).unwrap();
            assert_eq!(served.version, ApiVersion::newest(), "{later}");
            assert!(served.warning.unwrap().contains(later));
        }
    }

    #[test]
    fn rules_change_with_the_version() {
        let at = |v: &str| served(v).unwrap().version;
        let (old, new) = (at("2022-11-15"), at("2023-08-16"));
        assert!(!old.automatic_payment_methods_by_default());
        assert!(new.automatic_payment_methods_by_default());
        assert!(at("2022-08-01").charge_embeds_refunds());
        assert!(!old.charge_embeds_refunds());
        assert_eq!(new.method_list_param(), "payment_method_types");
        assert_eq!(
            ApiVersion::default().method_list_param(),
            "allowed_payment_method_types"
        );
    }
}
