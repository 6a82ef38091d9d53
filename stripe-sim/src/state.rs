//! The simulator's memory: accounts by secret, staged faults, and every request received.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::account::Account;
use crate::faults::{Fault, FaultSpec};
use crate::idempotency::{Claim, ClaimGuard, IdempotencyEntry};

/// A request as the simulator received it, for tests to inspect.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Headers, lowercase names; repeated ones joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// Body as text.
    pub body: String,
}

#[derive(Debug, Default)]
struct SimState {
    accounts: HashMap<String, Account>,
    faults: Vec<Fault>,
    next_fault_id: u64,
    requests: Vec<RecordedRequest>,
}

/// The whole simulator state, shared by every connection.
#[derive(Debug, Default)]
pub struct Sim {
    state: Mutex<SimState>,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the account of `secret`, creating it on first use.
    pub fn with_account<T>(&self, secret: &str, f: impl FnOnce(&mut Account) -> T) -> T {
        f(self.lock().accounts.entry(secret.to_owned()).or_default())
    }

    /// Runs `f` on every account.
    pub fn each_account<T>(&self, mut f: impl FnMut(&Account) -> Vec<T>) -> Vec<T> {
        self.lock().accounts.values().flat_map(&mut f).collect()
    }

    /// Keeps a received request.
    pub fn record(&self, request: RecordedRequest) {
        self.lock().requests.push(request);
    }

    /// Every request received since the last reset.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Claims an idempotency key for a request with `fingerprint`.
    pub fn claim(self: &Arc<Self>, secret: &str, key: &str, fingerprint: &str) -> Claim {
        let claim = self.with_account(secret, |account| match account.idempotency.get(key) {
            Some(IdempotencyEntry::Done {
                fingerprint: first,
                response,
            }) if first == fingerprint => {
                let mut replay = response.clone();
                replay.replayed = true;
                Some(Claim::Replay(replay))
            }
            Some(IdempotencyEntry::Done { .. }) => Some(Claim::Mismatch),
            Some(IdempotencyEntry::InFlight { .. }) => Some(Claim::InFlight),
            None => {
                account.idempotency.insert(
                    key.to_owned(),
                    IdempotencyEntry::InFlight {
                        fingerprint: fingerprint.to_owned(),
                    },
                );
                None
            }
        });
        claim.unwrap_or_else(|| {
            Claim::Fresh(ClaimGuard::new(self.clone(), secret, key, fingerprint))
        })
    }

    /// Stages a fault; returns it with its id.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<Fault, String> {
        let mut state = self.lock();
        state.next_fault_id += 1;
        let fault = Fault::new(state.next_fault_id, spec)?;
        state.faults.push(fault.clone());
        Ok(fault)
    }

    /// The faults still staged.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    /// Drops every staged fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Takes one use of the first fault matching `method path`.
    pub fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut state = self.lock();
        let index = state.faults.iter().position(|f| f.matches(method, path))?;
        let fault = &mut state.faults[index];
        fault.remaining -= 1;
        let taken = fault.clone();
        if fault.remaining == 0 {
            state.faults.remove(index);
        }
        Some(taken)
    }

    /// Forgets everything: objects, keys, faults and recorded requests.
    pub fn reset(&self) {
        *self.lock() = SimState::default();
    }
}
