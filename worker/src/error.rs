//! Why the worker or a command stopped.

/// A failure with one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Temporal is unreachable or refused.
    #[error("temporal: {0}")]
    Temporal(String),
    /// The broker is unreachable or refused.
    #[error("broker: {0}")]
    Broker(String),
    /// The worker failed while running.
    #[error("worker: {0}")]
    Run(String),
    /// A checkout refused what was asked of it, and why.
    #[error("refused: {0}")]
    Refused(String),
}
