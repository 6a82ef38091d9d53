//! A library's retry of a money request: Stripe's replay of the first, not
//! a second charge (rule 10 in `docs/proxy.md`).

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::spend::{Target, Valued};
use crate::error::ApiError;
use crate::form::FormParams;
use crate::group_commit::Statement;
use crate::state::AppState;

/// A money request's Idempotency-Key, and what makes a retry of it the same request.
pub struct Idempotent {
    /// The client's key, as sent.
    key: String,
    /// SHA-256 of the method, path, parameters and account.
    fingerprint: String,
    /// Whether this request repeats one already counted.
    replay: bool,
}

/// For a money request sent with an Idempotency-Key: whether it repeats,
/// within [`crate::store::idempotent::REPLAY_WINDOW`], one of the same label
/// with the same key and the same request whose money is counted. Stripe
/// answers such a retry (a library's, after a 5xx, a dropped answer or a
/// timeout) with its saved answer and moves nothing more, so nothing more
/// is reserved: `valued.need_micros` becomes 0.
pub async fn replay(
    state: &AppState,
    target: Target<'_>,
    params: &FormParams,
    client_key: Option<&str>,
    valued: Option<&mut Valued>,
) -> Result<Option<Idempotent>, ApiError> {
    let (Some(client_key), Some(valued)) = (client_key, valued) else {
        return Ok(None);
    };
    let mut digest = Sha256::new();
    for part in [
        target.method,
        target.path,
        &params.encode(),
        target.key.stripe_account.as_deref().unwrap_or(""),
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let fingerprint = hex::encode(digest.finalize());
    let replay = state
        .store()
        .counted_before(
            &target.key.namespace(),
            client_key,
            &fingerprint,
            Utc::now(),
        )
        .await?;
    if replay {
        valued.need_micros = 0;
    }
    Ok(Some(Idempotent {
        key: client_key.to_owned(),
        fingerprint,
        replay,
    }))
}

impl Idempotent {
    /// What settling a first request sent with this key writes: the request
    /// remembered, with whether its money is `counted` (kept on every outcome
    /// that may have moved it; a 4xx may not have been saved by Stripe, so
    /// its retry counts anew). A replay writes nothing: the window counts
    /// from the request that was counted.
    pub fn remember(
        &self,
        state: &AppState,
        target: Target<'_>,
        counted: bool,
    ) -> Option<Statement> {
        (!self.replay).then(|| {
            state.store().record_idempotent(
                &target.key.namespace(),
                &self.key,
                &self.fingerprint,
                counted,
                Utc::now(),
            )
        })
    }
}
