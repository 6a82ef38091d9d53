//! What a caller tells a checkout about its order: the `fulfilment` signal
//! and the `fulfil` Update carry a [`FulfilmentRequest`], whose payload can
//! never fail decoding. A payload the SDK could not decode would fail the
//! workflow task on every retry and wedge a charged checkout; this one is
//! checked by the handler (the signal logs and ignores a bad one, the
//! Update's validator refuses it).

use serde::{Deserialize, Serialize};
use temporalio_common::data_converters::{
    PayloadConversionError, SerializationContext, TemporalDeserializable, TemporalSerializable,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

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
#[derive(Debug, Clone, Default)]
pub struct FulfilmentRequest {
    payloads: Vec<Payload>,
}

impl FulfilmentRequest {
    /// A request carrying any JSON value (for callers, and tests, that send their own).
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            payloads: vec![json_payload(value.to_string().into_bytes())],
        }
    }

    /// The fulfilment it carries, or why it carries none. `strict` also
    /// refuses fields other than `ok` and `reason` (a misspelt `reason`
    /// would otherwise vanish); checkouts recorded before it parse leniently.
    pub fn parse(&self, strict: bool) -> Result<Fulfilment, String> {
        let [payload] = self.payloads.as_slice() else {
            return Err(format!(
                "expected one argument {{\"ok\": bool, \"reason\": string?}}, got {}",
                self.payloads.len()
            ));
        };
        let encoding = payload.metadata.get("encoding").map(Vec::as_slice);
        if encoding != Some(b"json/plain".as_slice()) {
            return Err(format!(
                "expected a JSON payload, got encoding {:?}",
                encoding.map(String::from_utf8_lossy).unwrap_or_default()
            ));
        }
        let expected = |why: &dyn std::fmt::Display| {
            format!("expected {{\"ok\": bool, \"reason\": string?}}: {why}")
        };
        let value: serde_json::Value =
            serde_json::from_slice(&payload.data).map_err(|err| expected(&err))?;
        let Some(fields) = value.as_object() else {
            return Err(expected(&"not a JSON object"));
        };
        if strict
            && let Some(unknown) = fields
                .keys()
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

impl From<Fulfilment> for FulfilmentRequest {
    fn from(fulfilment: Fulfilment) -> Self {
        // Invariant: a struct of a bool and an optional string always serializes.
        let data = serde_json::to_vec(&fulfilment).expect("a Fulfilment serializes");
        Self {
            payloads: vec![json_payload(data)],
        }
    }
}

fn json_payload(data: Vec<u8>) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data,
        ..Default::default()
    }
}

impl TemporalSerializable for FulfilmentRequest {
    fn to_payload(&self, _: &SerializationContext<'_>) -> Result<Payload, PayloadConversionError> {
        Ok(self.payloads.first().cloned().unwrap_or_default())
    }

    fn to_payloads(
        &self,
        _: &SerializationContext<'_>,
    ) -> Result<Vec<Payload>, PayloadConversionError> {
        Ok(self.payloads.clone())
    }
}

impl TemporalDeserializable for FulfilmentRequest {
    fn from_payload(
        _: &SerializationContext<'_>,
        payload: Payload,
    ) -> Result<Self, PayloadConversionError> {
        Ok(Self {
            payloads: vec![payload],
        })
    }

    fn from_payloads(
        _: &SerializationContext<'_>,
        payloads: Vec<Payload>,
    ) -> Result<Self, PayloadConversionError> {
        Ok(Self { payloads })
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
