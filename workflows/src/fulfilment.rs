//! What a caller tells a checkout about its order: the `fulfilment` signal
//! and the `fulfil` Update carry a [`FulfilmentRequest`] ([`Raw`]), whose
//! payload can never fail decoding: the handler checks it (the signal logs
//! and ignores a bad one, the Update's validator refuses it).

use serde::{Deserialize, Serialize};

use crate::payloads::Raw;

/// Whether the order was fulfilled: `{"ok": bool, "reason": string?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfilment {
    /// True when fulfilled; false refunds the charge.
    pub ok: bool,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Longest `reason` kept (it ends up in the workflow's result).
const MAX_REASON: usize = 500;

/// The payloads of a `fulfilment` signal or `fulfil` Update, as sent.
/// Decoding always succeeds; [`FulfilmentRequest::parse`] says whether
/// they hold a [`Fulfilment`].
pub type FulfilmentRequest = Raw<Fulfilment>;

impl Raw<Fulfilment> {
    /// The fulfilment it carries, or why it carries none. `strict` also
    /// refuses fields other than `ok` and `reason` (a misspelt `reason`
    /// would otherwise vanish); checkouts recorded before it parse leniently.
    pub fn parse(&self, strict: bool) -> Result<Fulfilment, String> {
        let (value, expected) = self.object("{\"ok\": bool, \"reason\": string?}")?;
        if strict
            && let Some(unknown) = (value.as_object().into_iter().flat_map(|o| o.keys()))
                .find(|key| !["ok", "reason"].contains(&key.as_str()))
        {
            return Err(expected(&format!("unknown field {unknown:?}")));
        }
        let fulfilment: Fulfilment = serde_json::from_value(value).map_err(|err| expected(&err))?;
        if fulfilment
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_REASON)
        {
            return Err(format!("reason is longer than {MAX_REASON} bytes"));
        }
        Ok(fulfilment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_fulfilment_parses() {
        let good = FulfilmentRequest::from(Fulfilment {
            ok: false,
            reason: Some("out of stock".into()),
        });
        assert_eq!(
            good.parse(true).unwrap().reason.as_deref(),
            Some("out of stock")
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"ok": "yes"}),
            serde_json::json!([true]),
            serde_json::json!(null),
        ] {
            assert!(FulfilmentRequest::json(&bad).parse(true).is_err(), "{bad}");
        }
        assert!(
            FulfilmentRequest::default().parse(true).is_err(),
            "no argument"
        );
    }

    #[test]
    fn unknown_fields_are_refused_strictly_and_let_be_for_older_checkouts() {
        let misspelt = FulfilmentRequest::json(&serde_json::json!({"ok": false, "reasn": "x"}));
        let err = misspelt.parse(true).unwrap_err();
        assert!(err.contains("unknown field \"reasn\""), "{err}");
        assert_eq!(misspelt.parse(false).unwrap().reason, None);
    }
}
