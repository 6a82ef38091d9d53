//! `Idempotency-Key` as Stripe (API v1) keeps it: the first request's result
//! is saved once execution begins, errors included (a 500 raised while
//! executing too), and replayed for the same key and parameters; other
//! parameters are an `idempotency_error`; a key whose first request still
//! runs is a 409. Requests refused before executing (validation, staged
//! `status` faults) are not saved. Keys are scoped per secret and expire 24
//! hours after first use (by the simulator's clock, which `/_sim/clock` moves).
//!
//! This module is the table of one secret's keys and those rules, as plain
//! data: it knows nothing of accounts, locks or requests, so the account
//! that owns a table and the simulator that holds a key for a running
//! request both build on it, and it on neither.

use std::collections::HashMap;

use crate::response::SimResponse;

/// How long a key is remembered after its first use: 24 hours.
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// What the simulator knows of one idempotency key.
#[derive(Debug, Clone)]
enum IdempotencyEntry {
    /// The first request with this key is still running. What its answer
    /// will be saved with (fingerprint, time of first use) travels with the
    /// request, to [`IdempotencyTable::complete`].
    InFlight,
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
///
/// `Fresh` carries whatever holds the key for the request: nothing in the
/// table itself (`Claim<()>`), a guard that saves or frees it once the
/// simulator hands the claim to a request (`Claim<ClaimGuard>` in `state`).
#[derive(Debug)]
pub enum Claim<Hold = ()> {
    /// First use: run it, then save its answer.
    Fresh(Hold),
    /// A repeat: send this saved answer.
    Replay(SimResponse),
    /// Same key, other parameters.
    Mismatch,
    /// Same key, first request still running.
    InFlight,
}

impl Claim {
    /// The same claim, a fresh one holding what `hold` makes.
    pub fn held_by<Hold>(self, hold: impl FnOnce() -> Hold) -> Claim<Hold> {
        match self {
            Claim::Fresh(()) => Claim::Fresh(hold()),
            Claim::Replay(response) => Claim::Replay(response),
            Claim::Mismatch => Claim::Mismatch,
            Claim::InFlight => Claim::InFlight,
        }
    }
}

/// The idempotency keys seen with one secret.
#[derive(Debug, Default)]
pub struct IdempotencyTable {
    entries: HashMap<String, IdempotencyEntry>,
}

impl IdempotencyTable {
    /// Looks `key` up for a request with `fingerprint` at `now_ms`; on a
    /// fresh claim the key is marked in flight, so that a concurrent repeat
    /// gets a 409 rather than running twice.
    pub fn claim(&mut self, key: &str, fingerprint: &str, now_ms: i64) -> Claim {
        match self.entries.get(key) {
            Some(IdempotencyEntry::Done { first_used_ms, .. })
                if now_ms - first_used_ms >= KEY_LIFETIME_MS => {}
            Some(IdempotencyEntry::Done {
                fingerprint: first,
                response,
                ..
            }) if first == fingerprint => {
                let mut replay = response.clone();
                replay.replayed = true;
                return Claim::Replay(replay);
            }
            Some(IdempotencyEntry::Done { .. }) => return Claim::Mismatch,
            Some(IdempotencyEntry::InFlight) => return Claim::InFlight,
            None => {}
        }
        // Unused, or expired: the key starts over with this request.
        self.entries
            .insert(key.to_owned(), IdempotencyEntry::InFlight);
        Claim::Fresh(())
    }

    /// Saves `response` as the answer for `key`, first used at
    /// `first_used_ms` by a request with `fingerprint`.
    pub fn complete(
        &mut self,
        key: &str,
        fingerprint: String,
        response: &SimResponse,
        first_used_ms: i64,
    ) {
        self.entries.insert(
            key.to_owned(),
            IdempotencyEntry::Done {
                fingerprint,
                response: response.clone(),
                first_used_ms,
            },
        );
    }

    /// Frees `key` if its request is still in flight, so that a retry runs
    /// afresh; a saved answer stays.
    pub fn release(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(IdempotencyEntry::InFlight)) {
            self.entries.remove(key);
        }
    }
}
