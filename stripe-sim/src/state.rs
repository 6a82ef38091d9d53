//! The simulator's memory: accounts by secret, staged faults, and every request received.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::account::Account;
use crate::faults::{Fault, FaultSpec};
use crate::idempotency::Claim;
use crate::response::SimResponse;
use crate::version::ApiVersion;

/// What a request executes with: the simulator's clock and the API version.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// The simulator's clock, unix milliseconds.
    pub now_ms: i64,
    /// The request's `Stripe-Version`.
    pub version: ApiVersion,
    /// How long a new object stays out of search results.
    pub search_delay_ms: i64,
}

impl Ctx {
    /// The simulator's clock, unix seconds, as Stripe's `created`.
    pub fn now(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }
}

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
    /// When it arrived, unix milliseconds by the machine's clock (which
    /// `/_sim/clock` does not move): tests measure the time between attempts.
    pub received_at_ms: i64,
    /// The staged fault that hit it, if one did.
    pub fault: Option<u64>,
}

/// Where [`Sim::record`] put a request, so that a fault taken for it is noted on it.
#[derive(Debug, Clone, Copy)]
pub struct RecordedAt {
    /// How many resets had happened: after another one, the entry is gone.
    resets: u64,
    index: usize,
}

#[derive(Debug, Default)]
struct SimState {
    accounts: HashMap<String, Account>,
    faults: Vec<Fault>,
    next_fault_id: u64,
    requests: Vec<RecordedRequest>,
    /// Resets so far; kept across them.
    resets: u64,
    /// How far `/_sim/clock` moved the clock ahead of the machine's.
    clock_offset_ms: i64,
    search_delay_ms: i64,
}

/// The whole simulator state, shared by every connection.
#[derive(Debug, Default)]
pub struct Sim {
    state: Mutex<SimState>,
    /// The search indexing delay a reset returns to.
    initial_search_delay: Duration,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The machine's clock, unix milliseconds.
pub(crate) fn machine_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

impl Sim {
    /// A simulator whose search index lags `search_delay` behind writes.
    pub fn new(search_delay: Duration) -> Self {
        let sim = Self {
            state: Mutex::default(),
            initial_search_delay: search_delay,
        };
        sim.lock().search_delay_ms = millis(search_delay);
        sim
    }

    /// The context a request executes in, at `version`.
    pub fn ctx(&self, version: ApiVersion) -> Ctx {
        let state = self.lock();
        Ctx {
            now_ms: machine_ms() + state.clock_offset_ms,
            version,
            search_delay_ms: state.search_delay_ms,
        }
    }

    /// Moves the simulator's clock ahead; returns the new time (unix ms).
    pub fn advance_clock(&self, by: Duration) -> i64 {
        let mut state = self.lock();
        state.clock_offset_ms = state.clock_offset_ms.saturating_add(millis(by));
        machine_ms() + state.clock_offset_ms
    }

    /// Sets the search indexing delay for objects created from now on.
    pub fn set_search_delay(&self, delay: Duration) {
        self.lock().search_delay_ms = millis(delay);
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the account of `secret`, creating it on first use.
    pub fn with_account<T>(&self, secret: &str, f: impl FnOnce(&mut Account) -> T) -> T {
        f(self.lock().accounts.entry(secret.to_owned()).or_default())
    }

    /// The secrets that have an account.
    pub fn secrets(&self) -> Vec<String> {
        self.lock().accounts.keys().cloned().collect()
    }

    /// Runs `f` on every account.
    pub fn each_account<T>(&self, mut f: impl FnMut(&Account) -> Vec<T>) -> Vec<T> {
        self.lock().accounts.values().flat_map(&mut f).collect()
    }

    /// Keeps a received request; returns where, for [`Sim::take_fault`].
    pub fn record(&self, request: RecordedRequest) -> RecordedAt {
        let mut state = self.lock();
        state.requests.push(request);
        RecordedAt {
            resets: state.resets,
            index: state.requests.len() - 1,
        }
    }

    /// Every request received since the last reset.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Claims an idempotency key of `secret` for a request with
    /// `fingerprint`; a fresh claim comes with the guard that saves its
    /// answer. Keys expire 24 hours after first use, by the simulator's clock.
    pub fn claim(
        self: &Arc<Self>,
        secret: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Claim<ClaimGuard> {
        self.with_account(secret, |account| {
            account.idempotency.claim(key, fingerprint, now_ms)
        })
        .held_by(|| ClaimGuard {
            sim: self.clone(),
            secret: secret.to_owned(),
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
            first_used_ms: now_ms,
            saved: false,
        })
    }

    /// Stages a fault; returns it with its id.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<Fault, String> {
        let mut state = self.lock();
        state.next_fault_id += 1;
        let fault = Fault::new(state.next_fault_id, spec, machine_ms())?;
        state.faults.push(fault.clone());
        Ok(fault)
    }

    /// The faults still staged.
    pub fn faults(&self) -> Vec<Fault> {
        let now = machine_ms();
        let mut state = self.lock();
        state.faults.retain(|f| !f.is_spent(now));
        state.faults.clone()
    }

    /// Drops every staged fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The first staged fault that hits the request recorded `at`
    /// (`method path`), noted on its record. Each matching fault, in staging
    /// order, counts the request until one hits it: a fault's `fraction`
    /// passes some over to the faults staged after it.
    pub fn take_fault(&self, at: RecordedAt, method: &str, path: &str) -> Option<Fault> {
        let now = machine_ms();
        let mut state = self.lock();
        state.faults.retain(|f| !f.is_spent(now));
        let mut hit = None;
        for (index, fault) in state.faults.iter_mut().enumerate() {
            if fault.matches(method, path) && fault.take() {
                hit = Some(index);
                break;
            }
        }
        let index = hit?;
        let taken = state.faults[index].clone();
        if taken.is_spent(now) {
            state.faults.remove(index);
        }
        if state.resets == at.resets
            && let Some(request) = state.requests.get_mut(at.index)
        {
            request.fault = Some(taken.id);
        }
        Some(taken)
    }

    /// Forgets everything: objects, keys, faults, recorded requests, the
    /// clock's advance and a changed search delay.
    pub fn reset(&self) {
        let mut state = self.lock();
        *state = SimState {
            search_delay_ms: millis(self.initial_search_delay),
            resets: state.resets + 1,
            ..SimState::default()
        };
    }
}

/// Holds a key in flight; saves the answer on [`ClaimGuard::complete`], and
/// frees the key when dropped without one (validation failure, staged fault,
/// a client that went away), so that a retry runs afresh.
///
/// It lives here, not beside the table, because it must find the table
/// again through the simulator's lock: the request runs between claim and
/// answer without holding that lock.
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
    /// Saves `response` as the answer for this key.
    pub fn complete(mut self, response: &SimResponse) {
        let fingerprint = std::mem::take(&mut self.fingerprint);
        self.sim.with_account(&self.secret, |account| {
            account
                .idempotency
                .complete(&self.key, fingerprint, response, self.first_used_ms);
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
            account.idempotency.release(&self.key)
        });
    }
}
