//! Spawns a simulator and speaks to it as a Stripe client and as a test.

use std::net::SocketAddr;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::net::TcpListener;

pub const SECRET: &str = "sk_test_sim_tests_51";

/// An answer: status, headers, JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }
}

/// A simulator running in this test's runtime.
pub struct TestSim {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub secret: String,
}

impl TestSim {
    pub async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(stripe_sim::run(listener, std::future::pending()));
        Self {
            addr,
            http: reqwest::Client::new(),
            secret: SECRET.to_owned(),
        }
    }

    /// The same simulator, seen with another secret key.
    pub fn with_secret(&self, secret: &str) -> Self {
        Self {
            addr: self.addr,
            http: self.http.clone(),
            secret: secret.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A form POST as a Stripe client sends it; `Err` when no answer came back.
    pub async fn try_post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.secret)
            .form(form);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        Ok(Self::answer(request.send().await?).await)
    }

    /// A form POST at API version `version`.
    pub async fn post_version(&self, path: &str, form: &[(&str, &str)], version: &str) -> Answer {
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.secret)
            .header("Stripe-Version", version)
            .form(form);
        Self::answer(request.send().await.unwrap()).await
    }

    /// A GET at API version `version`.
    pub async fn get_version(&self, path: &str, version: &str) -> Answer {
        let request = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.secret)
            .header("Stripe-Version", version);
        Self::answer(request.send().await.unwrap()).await
    }

    /// A control call (`/_sim/…`) with a JSON body.
    pub async fn control(&self, path: &str, body: Value) -> Answer {
        let url = format!("{}?secret={}", self.url(path), self.secret);
        Self::answer(self.http.post(url).json(&body).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.try_post(path, form, None).await.unwrap()
    }

    pub async fn post_idem(&self, path: &str, form: &[(&str, &str)], key: &str) -> Answer {
        self.try_post(path, form, Some(key)).await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::answer(
            self.http
                .get(self.url(path))
                .bearer_auth(&self.secret)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Creates and confirms a PaymentIntent that must succeed; returns it.
    pub async fn charge(&self, amount: &str) -> Value {
        let answer = self
            .post(
                "/v1/payment_intents",
                &[
                    ("amount", amount),
                    ("currency", "usd"),
                    ("payment_method", "pm_card_visa"),
                    ("confirm", "true"),
                    ("automatic_payment_methods[enabled]", "true"),
                    ("automatic_payment_methods[allow_redirects]", "never"),
                ],
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }

    /// Stages a fault through the control API.
    pub async fn fault(&self, spec: Value) -> Answer {
        Self::answer(
            self.http
                .post(self.url("/_sim/faults"))
                .json(&spec)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `data` of a control listing (`payment_intents`, `refunds`, `requests`, …).
    pub async fn held(&self, what: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(self.url(&format!("/_sim/{what}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().unwrap().clone()
    }
}
