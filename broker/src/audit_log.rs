//! `--audit-log PATH|-`: every audit record also as one JSON line, for a
//! log pipeline (Vector, Fluent Bit, …), so the audit can leave the
//! database at its retention.
//!
//! A line is written once its row has committed and before the answer goes
//! out (the store writes it: [`crate::store::Store::write`]); an answer
//! withheld because its row could not be written has a line too, with
//! `"stored": false`. The file is opened for appending and written one
//! whole line per call, without a buffer of the broker's: a restart, or a
//! `kill -9` between requests, continues it where it was. Fields are those
//! of `GET /v1/audit`'s records (docs/retention.md), never a token.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

/// Where lines go.
enum Out {
    File(std::fs::File),
    Stdout(std::io::Stdout),
}

/// The audit log of `--audit-log`.
pub struct AuditLog {
    out: Mutex<Out>,
    failures: Counter,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

/// One line: the record, and whether the database holds it.
#[derive(Serialize)]
struct Line<'a, R: Serialize> {
    #[serde(flatten)]
    record: &'a R,
    /// `false`: the row could not be written, and the answer was withheld.
    stored: bool,
    /// The status the broker withheld (upstream's answer), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    withheld_status: Option<u16>,
}

impl AuditLog {
    /// Appends to the file at `path` (created if missing, readable by its
    /// owner and group only), or writes to stdout for `-`. Failed writes
    /// are counted in `failures`.
    pub fn open(path: &Path, failures: Counter) -> std::io::Result<Self> {
        let out = if path == Path::new("-") {
            Out::Stdout(std::io::stdout())
        } else {
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
            Out::File(options.open(path)?)
        };
        Ok(Self {
            out: Mutex::new(out),
            failures,
        })
    }

    /// The line of `record` (an audit record as the database keeps it),
    /// stored in the database, ready for [`AuditLog::write`].
    pub fn line(record: &impl Serialize) -> Vec<u8> {
        encode(record, true, None)
    }

    /// Writes the line of a request whose row could not be written: the
    /// client was answered what `record` says instead of `withheld_status`.
    pub fn withheld(&self, record: &impl Serialize, withheld_status: u16) {
        self.write(&encode(record, false, Some(withheld_status)));
    }

    /// Writes `line` (one JSON object and its newline) in one call.
    pub fn write(&self, line: &[u8]) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let written = match &mut *out {
            Out::File(file) => file.write_all(line),
            Out::Stdout(stdout) => stdout.lock().write_all(line),
        };
        if let Err(err) = written {
            self.failures.inc();
            tracing::error!(error = %err, "could not write to the audit log");
        }
    }
}

/// The line of `record`.
fn encode(record: &impl Serialize, stored: bool, withheld_status: Option<u16>) -> Vec<u8> {
    let line = Line {
        record,
        stored,
        withheld_status,
    };
    // An audit record holds strings and numbers only: it always serializes.
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
