//! The worker's own HTTP endpoint (`--metrics-addr`): `/metrics` for
//! Prometheus (Keylease's metrics, then the Temporal SDK's) and `/healthz`,
//! which says whether the Temporal frontend answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;
use temporalio_client::Client;
use temporalio_common::protos::grpc::health::v1::HealthCheckRequest;
use temporalio_common::protos::grpc::health::v1::health_check_response::ServingStatus;
use tokio::net::TcpListener;

/// How long `/healthz` waits for Temporal.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// What the endpoint serves from.
pub struct Observer {
    /// Keylease's metrics.
    pub registry: Registry,
    /// Where the SDK's Prometheus exporter listens, if it runs.
    pub sdk_metrics: Option<SocketAddr>,
    /// The worker's Temporal client.
    pub client: Client,
    /// For reading the SDK's exporter.
    pub http: reqwest::Client,
}

/// Serves `/metrics` and `/healthz` on `listener` until the runtime stops.
pub fn spawn(listener: TcpListener, observer: Observer) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(observer));
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "metrics endpoint stopped");
        }
    });
}

async fn metrics(State(observer): State<Arc<Observer>>) -> Response {
    let mut text = String::new();
    if let Err(err) =
        prometheus_client::encoding::text::encode_registry(&mut text, &observer.registry)
    {
        tracing::error!(error = %err, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if let Some(addr) = observer.sdk_metrics {
        match observer
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
        {
            Ok(response) => text.push_str(&response.text().await.unwrap_or_default()),
            Err(err) => {
                tracing::warn!(error = %err.without_url(), "the SDK's metrics are unavailable")
            }
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn healthz(State(observer): State<Arc<Observer>>) -> Response {
    let mut health = observer.client.connection().health_service();
    let request = tonic::Request::new(HealthCheckRequest {
        service: "temporal.api.workflowservice.v1.WorkflowService".to_owned(),
    });
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, health.check(request)).await;
    let (status, temporal) = match answer {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => {
            (StatusCode::OK, "connected".to_owned())
        }
        Ok(Ok(response)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not serving ({})", response.get_ref().status),
        ),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unreachable: {}", err.message()),
        ),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "no answer".to_owned()),
    };
    let ok = status == StatusCode::OK;
    (
        status,
        axum::Json(
            json!({ "status": if ok { "ok" } else { "unavailable" }, "temporal": temporal }),
        ),
    )
        .into_response()
}
