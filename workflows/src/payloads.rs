//! Arguments kept as the payloads they came in. A workflow input, signal or
//! Update argument the SDK could not decode would fail the workflow task on
//! every retry and wedge the checkout; a [`Raw`] argument always decodes,
//! and its handler parses it and says what is wrong (`Raw<Fulfilment>` is
//! the `fulfilment` signal's and `fulfil` Update's; `Raw<CheckoutInput>`
//! the checkout's input).

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use temporalio_common::data_converters::{
    PayloadConversionError, SerializationContext, TemporalDeserializable, TemporalSerializable,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// The payloads of an argument meant to hold a `T`, as sent.
pub struct Raw<T> {
    payloads: Vec<Payload>,
    meant: PhantomData<fn() -> T>,
}

impl<T> Raw<T> {
    fn new(payloads: Vec<Payload>) -> Self {
        Self {
            payloads,
            meant: PhantomData,
        }
    }

    /// An argument carrying any JSON value (for callers, and tests, that send their own).
    pub fn json(value: &serde_json::Value) -> Self {
        Self::new(vec![json_payload(value.to_string().into_bytes())])
    }

    /// The one JSON object it carries, or why it carries none (`shape`
    /// describes what was expected, for the message).
    pub(crate) fn object(
        &self,
        shape: &str,
    ) -> Result<(serde_json::Value, impl Fn(&dyn fmt::Display) -> String), String> {
        let [payload] = self.payloads.as_slice() else {
            return Err(format!(
                "expected one argument {shape}, got {}",
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
        let shape = shape.to_owned();
        let expected = move |why: &dyn fmt::Display| format!("expected {shape}: {why}");
        let value: serde_json::Value =
            serde_json::from_slice(&payload.data).map_err(|err| expected(&err))?;
        if !value.is_object() {
            return Err(expected(&"not a JSON object"));
        }
        Ok((value, expected))
    }
}

impl<T: Serialize> From<T> for Raw<T> {
    fn from(value: T) -> Self {
        // Invariant: the workflow's argument types are plain data and always serialize.
        let data = serde_json::to_vec(&value).expect("an argument serializes");
        Self::new(vec![json_payload(data)])
    }
}

impl<T> Clone for Raw<T> {
    fn clone(&self) -> Self {
        Self::new(self.payloads.clone())
    }
}

impl<T> Default for Raw<T> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl<T> fmt::Debug for Raw<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raw")
            .field("payloads", &self.payloads.len())
            .finish()
    }
}

fn json_payload(data: Vec<u8>) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data,
        ..Default::default()
    }
}

impl<T> TemporalSerializable for Raw<T> {
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

impl<T> TemporalDeserializable for Raw<T> {
    fn from_payload(
        _: &SerializationContext<'_>,
        payload: Payload,
    ) -> Result<Self, PayloadConversionError> {
        Ok(Self::new(vec![payload]))
    }

    fn from_payloads(
        _: &SerializationContext<'_>,
        payloads: Vec<Payload>,
    ) -> Result<Self, PayloadConversionError> {
        Ok(Self::new(payloads))
    }
}
