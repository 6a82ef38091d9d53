//! The report: each worker's row of figures, their ratio, and the checks.

use std::time::Duration;

use crate::measured::{Measured, Variant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A line of the table: its name, how a run shows it, and the figure its ratio compares.
struct Line {
    name: &'static str,
    show: fn(&Measured) -> String,
    compare: Option<fn(&Measured) -> f64>,
}

const LINES: [Line; 12] = [
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
    Line {
        name: "the broker's own time per key issue / revoke, p50 (mean)",
        show: |r| {
            r.key_calls
                .as_ref()
                .map_or("–".to_owned(), |(issue, revoke)| {
                    format!(
                        "{:.2} ({:.2}) / {:.2} ({:.2}) ms",
                        issue.p50 * 1e3,
                        issue.mean * 1e3,
                        revoke.p50 * 1e3,
                        revoke.mean * 1e3
                    )
                })
        },
        compare: None,
    },
    Line {
        name: "waiting for a core per checkout, worker / broker threads",
        show: |r| {
            format!(
                "{:.2} / {} ms",
                r.ms_per_checkout(r.worker_waited),
                r.broker_waited
                    .map_or("–".to_owned(), |b| format!("{:.2}", r.ms_per_checkout(b)))
            )
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
