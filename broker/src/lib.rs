//! The Keylease key broker: a self-hostable vault-key service and Stripe proxy.
//!
//! A caller with the admin token issues short-lived keys (`POST /v1/keys`),
//! each limited to a list of endpoints and a daily USD spend cap; a holder of
//! such a key calls Stripe through `/stripe/v1/...` and the broker forwards
//! the call with the real Stripe secret, which never leaves the broker.
//!
//! Modules:
//! - [`config`]: typed configuration (flags and environment variables).
//! - [`routes`]: the HTTP endpoints: [`routes::keys`], [`routes::audit`],
//!   [`routes::health`], and [`routes::proxy`], whose `forward` reads as the
//!   list of the proxy's steps.
//! - [`new_key`]: validation of a key request.
//! - [`key`]: a key as kept, its status and its spend period.
//! - [`allowlist`]: path normalization and endpoint patterns.
//! - [`usd`]: valuing an amount in USD for the spend cap.
//! - [`form`]: Stripe's form parameters, parsed as Stripe parses them and re-encoded.
//! - [`stripe`]: everything the broker knows of Stripe: its endpoints, ids,
//!   parameters and answers, and where its API is.
//! - [`store`]: keys, spend, objects and audit records in SQLite or PostgreSQL.
//! - [`group_commit`]: the store's writes, committed durably, many requests to one fsync.
//! - [`sqlite`]: the broker's own SQLite connections, for the writer and the reads.
//! - [`metrics`]: what the broker counts, for `/metrics`.
//! - [`server`]: the HTTP/1.1 accept loop, with header and body read timeouts.
//! - [`token`]: vault tokens and key ids, stored only as hashes.
//! - [`unauthenticated`]: requests that named no valid key, audited as counts.
//! - [`audit_log`]: `--audit-log`, the audit as JSON lines for a log pipeline.
//! - [`retention`]: deleting what is past its retention, in the background or by `tidy`.
//! - [`auth`], [`state`], [`error`]: the plumbing around them.

pub mod allowlist;
pub mod audit_log;
pub mod auth;
pub mod config;
pub mod error;
pub mod form;
pub mod group_commit;
pub mod key;
pub mod metrics;
pub mod new_key;
pub mod retention;
pub mod role;
pub mod role_budget;
pub mod routes;
pub mod server;
pub mod sqlite;
pub mod state;
pub mod store;
pub mod stripe;
pub mod tls;
pub mod token;
pub mod unauthenticated;
pub mod usd;

use secrecy::ExposeSecret;
use std::future::Future;

use axum::Router;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

pub use config::BrokerConfig;
pub use error::ApiError;
pub use state::AppState;
pub use store::Store;

/// Why the broker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A setting the broker refuses to run with: a weak admin token, unusable database settings.
    #[error(transparent)]
    Settings(#[from] config::ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened: unreachable, refused, or a corrupt SQLite file.
    #[error("database: {0}")]
    Open(#[from] store::OpenError),
    /// The upstream HTTP client could not be built.
    #[error("upstream client: {0}")]
    Upstream(#[from] reqwest::Error),
    /// A write showed the SQLite file can no longer be trusted (an I/O error,
    /// a corrupt file): the broker stopped rather than serve from it.
    #[error(
        "stopped after a failed write to the SQLite file ({0}); check the disk, then restart: \
         the file is checked before serving"
    )]
    StorageFailed(String),
    /// The server failed while serving.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// A setting is unsafe or inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}

/// The broker's routes over `state`.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route(
            "/v1/keys",
            post(routes::keys::issue).get(routes::keys::list),
        )
        .route("/v1/keys/revoke", post(routes::keys::revoke_by_prefix))
        .route(
            "/v1/keys/{id}",
            get(routes::keys::show).delete(routes::keys::revoke),
        )
        .route("/v1/audit", get(routes::audit::list))
        .route(
            "/v1/roles",
            post(routes::roles::create).get(routes::roles::list),
        )
        .route("/v1/roles/{name}/tokens", post(routes::roles::issue_token))
        .route(
            "/v1/roles/{name}/tokens/{id}",
            delete(routes::roles::revoke_token),
        )
        .route("/v1/whoami", get(routes::roles::whoami))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::admin_audit::audit_admin_calls,
        ));
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::health::metrics))
        .route("/v1/keys/self/objects", get(routes::proxy::recorded))
        .merge(admin)
        .fallback(routes::proxy::proxy)
        .with_state(state)
}

/// The router of the `--stripe-listen` address: Stripe's API at the root,
/// every request handled as `/stripe/...` is on the main address.
pub fn stripe_root_app(state: AppState) -> Router {
    Router::new()
        .fallback(routes::proxy::proxy_at_root)
        .with_state(state)
}

/// Refuses a weak admin token, opens the database of `config` and serves on
/// `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BrokerError> {
    run_on(listener, None, config, shutdown).await
}

/// [`run`], also serving Stripe's API at the root of `stripe_listener`
/// (`--stripe-listen`) when given.
pub async fn run_on(
    listener: TcpListener,
    stripe_listener: Option<TcpListener>,
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BrokerError> {
    config.check_upstream().map_err(BrokerError::Config)?;
    config.check()?;
    let tls = tls::acceptor(&config).map_err(BrokerError::Config)?;
    let store = Store::connect(
        config.db.url()?.expose_secret(),
        store::Integrity::of(&config.db),
    )
    .await?;
    // A failed write to the SQLite file stops the broker as a signal would.
    let stop = store.stop().clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            () = stop.stopped() => {}
        }
    };
    let state = AppState::new(&config, store)?;
    if let Some(path) = &config.audit_log {
        let failures = state.metrics().audit_log_failures.clone();
        let log = audit_log::AuditLog::open(path, failures).map_err(|err| {
            BrokerError::Config(format!(
                "KEYLEASE_BROKER_AUDIT_LOG (--audit-log): cannot open {}: {err}",
                path.display()
            ))
        })?;
        let _ = state.store().set_audit_log(log);
    }
    let limits = server::Limits {
        header_timeout: config.header_timeout,
        max_header_bytes: config.max_header_bytes,
        max_connections: config.max_connections,
    };
    let summaries = {
        let state = state.clone();
        let interval = config.unauthenticated_audit_interval;
        tokio::spawn(async move {
            unauthenticated::flush_every(state.unauthenticated(), state.store(), interval).await;
        })
    };
    let tidying = tokio::spawn(retention::every(
        state.clone(),
        retention::Retention::new(&config.retention, config.max_ttl),
        config.tidy_interval,
    ));
    let refused = {
        let state = state.clone();
        move |err: &hyper::Error| {
            let reason = if err.is_parse_too_large() {
                "too_large"
            } else if err.is_timeout() {
                "header_timeout"
            } else if err.is_parse() {
                "malformed"
            } else {
                return;
            };
            let labels = metrics::RefusedLabels { reason };
            state.metrics().refused_by_http.get_or_create(&labels).inc();
        }
    };
    // One stop for both addresses.
    let stopping = tokio_util::sync::CancellationToken::new();
    let stop_both = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop_both.cancel();
    });
    let main = server::serve(
        listener,
        app(state.clone()),
        limits,
        tls.clone(),
        refused.clone(),
        stopping.clone().cancelled_owned(),
    );
    let root = async {
        match stripe_listener {
            Some(stripe) => {
                server::serve(
                    stripe,
                    stripe_root_app(state.clone()),
                    limits,
                    tls.clone(),
                    refused.clone(),
                    stopping.clone().cancelled_owned(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let (main, root) = tokio::join!(main, root);
    main?;
    root?;
    // Connections are closed; requests already forwarded still finish, settle and are audited.
    state.in_flight().close();
    state.in_flight().wait().await;
    summaries.abort();
    tidying.abort();
    unauthenticated::flush(state.unauthenticated(), state.store()).await;
    match state.store().stop().reason() {
        Some(reason) => Err(BrokerError::StorageFailed(reason.to_owned())),
        None => Ok(()),
    }
}
