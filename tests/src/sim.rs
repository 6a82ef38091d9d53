//! stripe-sim seen from a test: what it holds and received, its control
//! API, and PaymentIntents made straight at it by someone other than
//! Keylease.

use serde_json::Value;

use crate::stack::{STRIPE_SECRET, Stack, sim_held};

impl Stack {
    /// A stripe-sim control listing (`payment_intents`, `refunds`, `requests`).
    pub async fn sim_held(&self, what: &str) -> Vec<Value> {
        sim_held(&self.http, self.sim, what).await
    }

    /// The writes (`POST`s) stripe-sim received, leaving out the reads a
    /// charge makes first (the order's PaymentIntents).
    pub async fn sim_writes(&self) -> Vec<Value> {
        let mut requests = self.sim_held("requests").await;
        requests.retain(|request| request["method"] == "POST");
        requests
    }

    /// A PaymentIntent made straight at stripe-sim with the Stripe secret,
    /// by someone other than Keylease: its JSON.
    pub async fn sim_create(&self, form: &[(&str, &str)]) -> Value {
        self.sim_post("/v1/payment_intents", form).await
    }

    /// A refund of `amount` (all that remains: `None`) of `payment_intent`
    /// made straight at stripe-sim (by an operator, say): its JSON.
    pub async fn sim_refund(&self, payment_intent: &str, amount: Option<i64>) -> Value {
        let amount = amount.map(|amount| amount.to_string());
        let mut form = vec![("payment_intent", payment_intent)];
        form.extend(amount.as_deref().map(|amount| ("amount", amount)));
        self.sim_post("/v1/refunds", &form).await
    }

    /// `POST path` with `form` to stripe-sim's Stripe API with the secret;
    /// the answer's JSON, or a panic when refused.
    async fn sim_post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .post(format!("http://{}{path}", self.sim))
            .bearer_auth(STRIPE_SECRET)
            .form(form)
            .send()
            .await
            .expect("a call to stripe-sim");
        let status = response.status();
        let answer = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path} refused ({status}): {answer}");
        answer
    }

    /// `POST` to stripe-sim's control API (`/_sim/config`, `/_sim/payment_intents/{id}/settle`).
    pub async fn sim_control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("http://{}{path}", self.sim))
            .json(&body)
            .send()
            .await
            .expect("sim control");
        // A refused control call would leave the test checking a setup it never got.
        let status = response.status();
        let answer = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path} refused ({status}): {answer}");
        answer
    }
}
