//! The figures: each worker's row, their ratio, and the checks; and the
//! quantiles of the worker's `keylease_key_lease_seconds` histogram.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::workload::{Ledger, Variant};

/// What one worker's measured run gave.
pub struct Measured {
    pub variant: Variant,
    pub workflows: usize,
    pub wall: Duration,
    /// Start to outcome, sorted.
    pub latencies: Vec<Duration>,
    pub worker_cpu: Duration,
    /// The broker's CPU over the run (Keylease only).
    pub broker_cpu: Option<Duration>,
    pub sim_cpu: Duration,
    pub worker_peak_rss: u64,
    /// The broker's peak RSS since it started (Keylease only; it served the warm-ups too).
    pub broker_peak_rss: Option<u64>,
    pub lease: Option<Lease>,
    pub ledger: Ledger,
    /// Keys left active after the run (Keylease only).
    pub active_keys: Option<usize>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.workflows as f64 / self.wall.as_secs_f64()
    }

    fn quantile(&self, q: f64) -> Duration {
        // Nearest rank.
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1]
    }

    fn ms_per_checkout(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1000.0 / self.workflows as f64
    }

    fn keylease_cpu(&self) -> Duration {
        self.worker_cpu + self.broker_cpu.unwrap_or_default()
    }
}

/// One scrape of the histogram: cumulative counts per upper bound, and its sum.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
}

/// The lease overhead (issue + revoke) of the attempts in one run.
pub struct Lease {
    pub attempts: f64,
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
}

impl Lease {
    /// The attempts between two scrapes of one worker; `None` when there were none.
    pub fn between(before: &Histogram, after: &Histogram) -> Option<Self> {
        let buckets: Vec<(f64, f64)> = after
            .buckets
            .iter()
            .map(|&(le, n)| {
                let earlier = before
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == le)
                    .map_or(0.0, |&(_, n)| n);
                (le, n - earlier)
            })
            .collect();
        let attempts = buckets.last()?.1;
        (attempts > 0.0).then(|| Self {
            attempts,
            p50: quantile(&buckets, 0.5),
            p99: quantile(&buckets, 0.99),
            mean: (after.sum - before.sum) / attempts,
        })
    }
}

/// The `q` quantile of cumulative `buckets`, interpolated linearly inside
/// its bucket as Prometheus' `histogram_quantile` does.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |&(_, n)| n);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let share = if n > lower.1 {
                (rank - lower.1) / (n - lower.1)
            } else {
                0.0
            };
            return lower.0 + (le - lower.0) * share;
        }
        lower = (le, n);
    }
    lower.0
}

/// `keylease_key_lease_seconds` from a worker's `/metrics` (empty for the baseline).
pub async fn scrape(http: &reqwest::Client, metrics: SocketAddr) -> anyhow::Result<Histogram> {
    let text = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .context("worker /metrics")?
        .text()
        .await?;
    let mut histogram = Histogram::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("keylease_key_lease_seconds_bucket{le=\"") {
            let (le, count) = rest.split_once("\"} ").context("a bucket line")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()?
            };
            histogram.buckets.push((le, count.trim().parse()?));
        } else if let Some(sum) = line.strip_prefix("keylease_key_lease_seconds_sum ") {
            histogram.sum = sum.trim().parse()?;
        }
    }
    Ok(histogram)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A line of the table: its name, how a run shows it, and the figure its ratio compares.
struct Line {
    name: &'static str,
    show: fn(&Measured) -> String,
    compare: Option<fn(&Measured) -> f64>,
}

const LINES: [Line; 10] = [
    Line {
        name: "checkouts/s",
        show: |r| format!("{:.1}", r.per_second()),
        compare: Some(|r| r.per_second()),
    },
    Line {
        name: "end-to-end p50",
        show: |r| ms(r.quantile(0.5)),
        compare: Some(|r| r.quantile(0.5).as_secs_f64()),
    },
    Line {
        name: "end-to-end p99",
        show: |r| ms(r.quantile(0.99)),
        compare: Some(|r| r.quantile(0.99).as_secs_f64()),
    },
    Line {
        name: "worker CPU per checkout",
        show: |r| format!("{:.2} ms", r.ms_per_checkout(r.worker_cpu)),
        compare: Some(|r| r.worker_cpu.as_secs_f64()),
    },
    Line {
        name: "broker CPU per checkout",
        show: |r| {
            r.broker_cpu.map_or("–".to_owned(), |c| {
                format!("{:.2} ms", r.ms_per_checkout(c))
            })
        },
        compare: None,
    },
    Line {
        name: "worker + broker CPU per checkout",
        show: |r| format!("{:.2} ms", r.ms_per_checkout(r.keylease_cpu())),
        compare: Some(|r| r.keylease_cpu().as_secs_f64()),
    },
    Line {
        name: "stripe-sim CPU per checkout",
        show: |r| format!("{:.2} ms", r.ms_per_checkout(r.sim_cpu)),
        compare: Some(|r| r.sim_cpu.as_secs_f64()),
    },
    Line {
        name: "worker peak RSS",
        show: |r| format!("{:.1} MB", r.worker_peak_rss as f64 / 1e6),
        compare: Some(|r| r.worker_peak_rss as f64),
    },
    Line {
        name: "broker peak RSS",
        show: |r| {
            r.broker_peak_rss
                .map_or("–".to_owned(), |b| format!("{:.1} MB", b as f64 / 1e6))
        },
        compare: None,
    },
    Line {
        name: "lease overhead per attempt (issue + revoke) p50 / p99 / mean",
        show: |r| {
            r.lease.as_ref().map_or("–".to_owned(), |l| {
                format!(
                    "{:.2} / {:.2} / {:.2} ms ({} attempts)",
                    l.p50 * 1e3,
                    l.p99 * 1e3,
                    l.mean * 1e3,
                    l.attempts
                )
            })
        },
        compare: None,
    },
];

/// Prints the table and the checks; returns whether every check held.
pub fn print(rows: &[Measured]) -> bool {
    let keylease = rows.iter().find(|r| r.variant == Variant::Keylease);
    let baseline = rows.iter().find(|r| r.variant == Variant::Baseline);
    let cell =
        |row: Option<&Measured>, show: fn(&Measured) -> String| row.map_or("–".to_owned(), show);
    println!();
    println!("| | Keylease | baseline (one shared secret, no broker) | Keylease ÷ baseline |");
    println!("|---|---|---|---|");
    for line in &LINES {
        let ratio = match (keylease, baseline, line.compare) {
            (Some(k), Some(b), Some(f)) if f(b) > 0.0 => format!("{:.2}", f(k) / f(b)),
            _ => "–".to_owned(),
        };
        println!(
            "| {} | {} | {} | {ratio} |",
            line.name,
            cell(keylease, line.show),
            cell(baseline, line.show)
        );
    }
    println!();
    let mut ok = true;
    for row in rows {
        let l = &row.ledger;
        println!(
            "{}: {} orders: {} double charges, {} not charged, {} refunded once, {} refunds wrong{}",
            row.variant.name(),
            l.orders,
            l.double_charged,
            l.not_charged,
            l.refunded_once,
            l.refunds_wrong,
            row.active_keys.map_or(String::new(), |n| format!(
                "; {n} keys still active at the broker"
            )),
        );
        ok &= l.holds() && row.active_keys.unwrap_or(0) == 0;
    }
    println!(
        "{}",
        if ok {
            "checks: all held"
        } else {
            "checks: FAILED"
        }
    );
    ok
}
