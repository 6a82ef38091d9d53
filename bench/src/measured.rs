//! What a measured run gave, shared by the workload that measures it and
//! the report that prints it: which worker ran, its figures, the ledger of
//! what stripe-sim holds, and the quantiles of the worker's
//! `keylease_key_lease_seconds` histogram.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// Which worker serves the checkouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `keylease-worker`: a key per attempt from the broker, calls through its proxy.
    Keylease,
    /// One shared Stripe secret, stripe-sim called directly.
    Baseline,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Keylease => "keylease",
            Self::Baseline => "baseline",
        }
    }
}

/// What stripe-sim holds for the orders `order-<prefix>-…`, against what each should have.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Orders run (warm-up included).
    pub orders: usize,
    /// Orders with more than one succeeded PaymentIntent.
    pub double_charged: usize,
    /// Orders with none.
    pub not_charged: usize,
    /// Failed (odd) orders whose charge was refunded exactly once.
    pub refunded_once: usize,
    /// Orders refunded when they should not be, twice, or not when they should.
    pub refunds_wrong: usize,
}

impl Ledger {
    pub fn holds(&self) -> bool {
        self.double_charged == 0 && self.not_charged == 0 && self.refunds_wrong == 0
    }
}

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
    /// Time the worker's threads waited for a core over the run.
    pub worker_waited: Duration,
    /// The same of the broker's (Keylease only).
    pub broker_waited: Option<Duration>,
    /// The broker's own time per key issue and per revoke (Keylease only).
    pub key_calls: Option<(Lease, Lease)>,
    pub ledger: Ledger,
    /// Keys left active after the run (Keylease only).
    pub active_keys: Option<usize>,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.workflows as f64 / self.wall.as_secs_f64()
    }

    pub fn quantile(&self, q: f64) -> Duration {
        // Nearest rank.
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1]
    }

    pub fn ms_per_checkout(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1000.0 / self.workflows as f64
    }

    pub fn keylease_cpu(&self) -> Duration {
        self.worker_cpu + self.broker_cpu.unwrap_or_default()
    }
}

/// One scrape of the histogram: cumulative counts per upper bound, and its sum.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
}

/// The lease overhead (issue + revoke) of the attempts in one run, or the
/// broker's own time of one kind of key call.
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

/// The `/metrics` text a worker or the broker serves at `metrics`.
pub async fn metrics_text(http: &reqwest::Client, metrics: SocketAddr) -> anyhow::Result<String> {
    Ok(http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .with_context(|| format!("/metrics at {metrics}"))?
        .text()
        .await?)
}

/// The histogram `name` of `text`, the series of `labels` (`call="issue"`,
/// or empty for a histogram without labels; `le` may come before or after
/// them, as encoders differ).
pub fn histogram(text: &str, name: &str, labels: &str) -> anyhow::Result<Histogram> {
    let bucket = format!("{name}_bucket{{");
    let sum = format!("{name}_sum");
    let mut histogram = Histogram::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(bucket.as_str()) {
            let (set, count) = rest.split_once("} ").context("a bucket line")?;
            let mut le = None;
            let others: Vec<&str> = set
                .split(',')
                .filter(|pair| match pair.strip_prefix("le=") {
                    Some(value) => {
                        le = Some(value.trim_matches('"'));
                        false
                    }
                    None => true,
                })
                .collect();
            if others.join(",") != labels {
                continue;
            }
            let le = match le.context("a bucket without le")? {
                "+Inf" => f64::INFINITY,
                bound => bound.parse()?,
            };
            histogram.buckets.push((le, count.trim().parse()?));
        } else if let Some(rest) = line.strip_prefix(sum.as_str()) {
            let (set, value) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ").context("a sum line")?,
                None => ("", rest),
            };
            if set == labels {
                histogram.sum = value.trim().parse()?;
            }
        }
    }
    Ok(histogram)
}

/// `keylease_key_lease_seconds` from a worker's `/metrics`.
pub async fn scrape(http: &reqwest::Client, metrics: SocketAddr) -> anyhow::Result<Histogram> {
    histogram(
        &metrics_text(http, metrics).await?,
        "keylease_key_lease_seconds",
        "",
    )
}

/// The broker's own time per key issue and per revoke
/// (`keylease_broker_key_call_seconds`) from its `/metrics`.
pub async fn scrape_key_calls(
    http: &reqwest::Client,
    broker: SocketAddr,
) -> anyhow::Result<[Histogram; 2]> {
    let text = metrics_text(http, broker).await?;
    let name = "keylease_broker_key_call_seconds";
    Ok([
        histogram(&text, name, "call=\"issue\"")?,
        histogram(&text, name, "call=\"revoke\"")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labelled_series_is_read_apart_from_its_neighbours() {
        let text = "# HELP x\n\
            k_seconds_sum{call=\"issue\"} 0.5\n\
            k_seconds_count{call=\"issue\"} 2\n\
            k_seconds_bucket{le=\"0.001\",call=\"issue\"} 1\n\
            k_seconds_bucket{call=\"issue\",le=\"+Inf\"} 2\n\
            k_seconds_sum{call=\"revoke\"} 9\n\
            k_seconds_bucket{call=\"revoke\",le=\"0.001\"} 7\n\
            k_seconds_bucket{call=\"revoke\",le=\"+Inf\"} 9\n\
            l_seconds_sum 3\n\
            l_seconds_bucket{le=\"+Inf\"} 4\n";
        let issue = histogram(text, "k_seconds", "call=\"issue\"").unwrap();
        assert_eq!(issue.buckets, vec![(0.001, 1.0), (f64::INFINITY, 2.0)]);
        assert_eq!(issue.sum, 0.5);
        let plain = histogram(text, "l_seconds", "").unwrap();
        assert_eq!(plain.buckets, vec![(f64::INFINITY, 4.0)]);
        assert_eq!(plain.sum, 3.0);
    }
}
