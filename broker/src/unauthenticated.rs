//! Requests that named no valid key: counted, and written to the audit as
//! one row per kind per interval, never one durable write each.
//!
//! Anyone who can reach the broker can send them (an unknown token, vendor
//! or method, a malformed path; a revoked or expired key's token, which
//! keeps working as a credential for nothing), so a durable write apiece
//! would let a stranger turn requests into fsyncs and disk. Each is counted in memory
//! under a kind drawn from a small fixed set (the vendor segment as the
//! metrics name it, the method among GET, POST, DELETE or `other`, the
//! status and error code the broker answered); [`flush_every`] writes what
//! was counted as summary rows whose `requests` says how many each stands for.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{AuditRecord, Store};

/// What a summary row groups by: a set bounded by the broker's own
/// statuses and codes, whatever a client sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Kind {
    vendor: String,
    method: &'static str,
    status: u16,
    code: Option<String>,
    /// A revoked or expired key's, named: bounded by the keys ever issued.
    key: Option<(String, String)>,
}

#[derive(Debug)]
struct Tally {
    since: DateTime<Utc>,
    requests: i64,
}

/// The requests without a valid key counted since the last flush.
#[derive(Debug, Default)]
pub struct Unauthenticated {
    counts: Mutex<BTreeMap<Kind, Tally>>,
}

impl Unauthenticated {
    /// Counts the request `record` describes (its path and client-chosen
    /// method are not kept: only their kind).
    pub fn count(&self, record: &AuditRecord) {
        let method = match record.method.as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "DELETE" => "DELETE",
            _ => "other",
        };
        let kind = Kind {
            vendor: record.vendor.clone(),
            method,
            status: record.status,
            code: record.code.clone(),
            key: record.key_id.clone().zip(record.label.clone()),
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .entry(kind)
            .or_insert(Tally {
                since: record.at,
                requests: 0,
            })
            .requests += 1;
    }

    /// The summary rows of what was counted, which is forgotten.
    pub fn take(&self) -> Vec<AuditRecord> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        counts
            .into_iter()
            .map(|(kind, tally)| AuditRecord {
                at: tally.since,
                key_id: kind.key.as_ref().map(|(id, _)| id.clone()),
                label: kind.key.map(|(_, label)| label),
                vendor: kind.vendor,
                method: kind.method.to_owned(),
                path: String::new(),
                status: kind.status,
                code: kind.code,
                reserved_usd: 0.0,
                latency_ms: 0,
                requests: tally.requests,
                actor: None,
            })
            .collect()
    }
}

/// Writes what `tally` counted to `store`, now: one row per kind.
pub async fn flush(tally: &Unauthenticated, store: &Store) {
    let rows = tally.take();
    if rows.is_empty() {
        return;
    }
    let unit = rows
        .iter()
        .map(|row| store.record_audit(row, 0, None))
        .collect();
    if let Err(err) = store.write(unit).await {
        // Counts only: the requests were refused and moved nothing.
        tracing::error!(error = %err, kinds = rows.len(), "could not write the summary of requests without a valid key");
    }
}

/// Flushes `tally` every `interval`, for as long as it runs.
pub async fn flush_every(tally: &Unauthenticated, store: &Store, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        flush(tally, store).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(vendor: &str, method: &str, path: &str, status: u16, code: &str) -> AuditRecord {
        AuditRecord {
            at: Utc::now(),
            key_id: None,
            label: None,
            vendor: vendor.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            code: Some(code.to_owned()),
            reserved_usd: 0.0,
            latency_ms: 3,
            requests: 1,
            actor: None,
        }
    }

    #[test]
    fn many_requests_of_one_kind_are_one_row_and_client_text_is_not_kept() {
        let tally = Unauthenticated::default();
        for i in 0..1000 {
            tally.count(&refused(
                "stripe",
                "GET",
                &format!("/v1/x{i}"),
                401,
                "invalid_key",
            ));
            tally.count(&refused(
                "unknown",
                &format!("M{i}"),
                "/y",
                405,
                "method_not_allowed",
            ));
        }
        let rows = tally.take();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows.iter()
                .all(|row| row.requests == 1000 && row.path.is_empty())
        );
        assert!(rows.iter().any(|row| row.method == "other"));
        assert!(tally.take().is_empty(), "taken rows are forgotten");
    }
}
