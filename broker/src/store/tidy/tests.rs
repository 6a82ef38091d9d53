//! Cutoffs at the edges of a day.

use super::*;

/// A helper's attack: at 00:00:01 with a one-second key retention,
/// yesterday's role spend was deleted while a request valued on
/// yesterday was still to take its role lease, which then started the
/// day at 0 and passed the role's daily cap.
#[test]
fn role_spend_of_yesterday_is_never_past_retention() {
    let now: DateTime<Utc> = "2026-12-06T00:00:01Z".parse().unwrap();
    let second = std::time::Duration::from_secs(1);
    let cutoffs = Cutoffs::at(now, Some(second), Some(second), second);
    assert_eq!(cutoffs.role_day.unwrap().as_str(), "2026-12-04");
    assert_eq!(
        cutoffs.keys.unwrap(),
        "2026-12-06T00:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        "keys that ended today are kept"
    );
    let month = std::time::Duration::from_secs(30 * 86_400);
    let cutoffs = Cutoffs::at(now, None, Some(month), second);
    assert_eq!(cutoffs.role_day.unwrap().as_str(), "2026-11-06");
}
