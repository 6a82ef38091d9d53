//! Object ids and times in Stripe's shapes.

use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh id with Stripe's prefix, e.g. `pi_3Pq…`: 24 random alphanumerics.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to a counter, still unique in this process.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        return format!("{prefix}_sim{:021}", NEXT.fetch_add(1, Ordering::Relaxed));
    }
    let suffix: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}_{suffix}")
}
