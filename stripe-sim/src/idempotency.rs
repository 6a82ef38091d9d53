//! `Idempotency-Key` as Stripe (API v1) keeps it: the first request's result
//! is saved once execution begins, errors included (a 500 raised while
//! executing too), and replayed for the same key and parameters; other
//! parameters are an `idempotency_error`; a key whose first request still
//! runs is a 409. Requests refused before executing (validation, staged
//! `status` faults) are not saved. Keys are scoped per secret and expire 24
//! hours after first use (by the simulator's clock, which `/_sim/clock` moves).

use std::sync::Arc;

use crate::response::SimResponse;
use crate::state::Sim;

/// How long a key is remembered after its first use: 24 hours.
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// What the simulator knows of one idempotency key.
#[derive(Debug, Clone)]
pub enum IdempotencyEntry {
    /// The first request with this key is still running.
    InFlight {
        /// Method, path and parameters of that request.
        fingerprint: String,
        /// When it arrived (simulator clock, unix ms).
        first_used_ms: i64,
    },
    /// The first request finished with `response`.
    Done {
        /// Method, path and parameters of that request.
        fingerprint: String,
        /// Its answer, replayed to repeats.
        response: SimResponse,
        /// When the key was first used (simulator clock, unix ms).
        first_used_ms: i64,
    },
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug)]
pub enum Claim {
    /// First use: run it, then save its answer through the guard.
    Fresh(ClaimGuard),
    /// A repeat: send this saved answer.
    Replay(SimResponse),
    /// Same key, other parameters.
    Mismatch,
    /// Same key, first request still running.
    InFlight,
}

/// Holds a key in flight; saves the answer on [`ClaimGuard::complete`], and
/// frees the key when dropped without one (validation failure, staged fault,
/// a client that went away), so that a retry runs afresh.
#[derive(Debug)]
pub struct ClaimGuard {
    sim: Arc<Sim>,
    secret: String,
    key: String,
    fingerprint: String,
    first_used_ms: i64,
    saved: bool,
}

impl ClaimGuard {
    pub(crate) fn new(
        sim: Arc<Sim>,
        secret: &str,
        key: &str,
        fingerprint: &str,
        first_used_ms: i64,
    ) -> Self {
        Self {
            sim,
            secret: secret.to_owned(),
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
            first_used_ms,
            saved: false,
        }
    }

    /// Saves `response` as the answer for this key.
    pub fn complete(mut self, response: &SimResponse) {
        let fingerprint = std::mem::take(&mut self.fingerprint);
        self.sim.with_account(&self.secret, |account| {
            account.idempotency.insert(
                self.key.clone(),
                IdempotencyEntry::Done {
                    fingerprint,
                    response: response.clone(),
                    first_used_ms: self.first_used_ms,
                },
            );
        });
        self.saved = true;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.saved {
            return;
        }
        self.sim.with_account(&self.secret, |account| {
            if matches!(
                account.idempotency.get(&self.key),
                Some(IdempotencyEntry::InFlight { .. })
            ) {
                account.idempotency.remove(&self.key);
            }
        });
    }
}
