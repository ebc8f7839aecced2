//! myrmex-cron against `croner` and `cron` on the same expressions and instants
//! in America/New_York: parse time, next fire time, iteration per occurrence.
//!
//! Run with `cargo bench -p myrmex-cron`. Criterion prints the detail per
//! expression; the run ends with one summary line per measure: myrmex's figure
//! (geometric mean over the expressions, worst case for `next`) and the ratio
//! of each peer's figure to it on the expressions that peer supports.
//!
//! Each measure's summary figure is the fastest of 300 short batches (see
//! `time_ns`), which is robust on a shared machine; criterion's own report
//! (10 samples of 300 ms) shows the spread.

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::TimeZone as _;
use chrono_tz::America::New_York;
use criterion::Criterion;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use myrmex_cron::Cron;

/// (myrmex/croner form, start instant). The `cron` crate gets a seconds field
/// prepended (6-field expressions are used as they are).
const CASES: [(&str, &str); 9] = [
    ("* * * * *", "2025-06-15T14:17:23Z"),
    ("*/5 * * * *", "2025-06-15T14:17:23Z"),
    ("0 0 * * *", "2025-06-15T14:17:23Z"),
    ("0 9-17 * * 1-5", "2025-06-15T14:17:23Z"),
    ("0 0 1,15 * 1", "2025-06-15T14:17:23Z"),
    ("0 0 29 2 *", "2025-03-01T05:00:00Z"),
    ("0 0 * * 5L", "2025-06-15T14:17:23Z"),
    ("*/10 * * * * *", "2025-06-15T14:17:23Z"),
    ("30 2 * * *", "2025-06-15T14:17:23Z"),
];

/// How many occurrences the iteration benchmark walks.
const ITER_N: usize = 200;

fn cron_crate_form(expr: &str) -> Option<String> {
    if expr.contains('L') {
        // The `cron` crate has no `L`.
        return None;
    }
    Some(if expr.split_whitespace().count() == 5 {
        format!("0 {expr}")
    } else {
        expr.to_owned()
    })
}

fn croner_parse(expr: &str) -> croner::Cron {
    croner::Cron::from_str(expr).expect("croner parses")
}

/// One library's figures for one measure: per-expression nanoseconds.
type Row = Vec<Option<f64>>;

/// Nanoseconds per call of `f`: the fastest of many short batches. On a busy
/// machine the fastest batch is the one least disturbed by other processes;
/// every library is measured the same way.
fn time_ns(mut f: impl FnMut()) -> f64 {
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        if start.elapsed() > Duration::from_micros(20) {
            break;
        }
        batch *= 2;
    }
    (0..300)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn geo_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v.ln(), n + 1));
    (sum / f64::from(n)).exp()
}

/// Prints `label: myrmex X ns | peer R x | ...`, ratios on the shared cases.
fn summary(label: &str, rows: &[(&str, Row)], worst: bool) {
    let (_, mine) = &rows[0];
    let my_all = geo_mean(mine.iter().flatten().copied());
    let mut line = format!("{label} geo-mean: myrmex {my_all:.0} ns");
    if worst {
        let w = mine.iter().flatten().copied().fold(0.0, f64::max);
        line = format!("{line} (worst {w:.0} ns)");
    }
    for (name, row) in &rows[1..] {
        let shared: Vec<usize> = (0..row.len())
            .filter(|&i| row[i].is_some() && mine[i].is_some())
            .collect();
        let peer = geo_mean(shared.iter().map(|&i| row[i].unwrap()));
        let me = geo_mean(shared.iter().map(|&i| mine[i].unwrap()));
        let note = if shared.len() < row.len() {
            format!(" (on {} of {})", shared.len(), row.len())
        } else {
            String::new()
        };
        line = format!("{line} | {name} {:.1}x{note}", peer / me);
    }
    println!("{line}");
}

fn main() {
    let tz = TimeZone::get("America/New_York").expect("zone");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(300))
        .sample_size(10)
        .configure_from_args();

    let starts: Vec<Timestamp> = CASES.iter().map(|(_, s)| s.parse().unwrap()).collect();
    let chrono_starts: Vec<chrono::DateTime<chrono_tz::Tz>> = starts
        .iter()
        .map(|t| New_York.timestamp_opt(t.as_second(), 0).unwrap())
        .collect();

    // Parse.
    {
        let mut g = c.benchmark_group("parse");
        for (expr, _) in CASES {
            g.bench_function(format!("myrmex {expr}"), |b| {
                b.iter(|| Cron::parse(black_box(expr)))
            });
            g.bench_function(format!("croner {expr}"), |b| {
                b.iter(|| croner::Cron::from_str(black_box(expr)))
            });
            if let Some(e) = cron_crate_form(expr) {
                g.bench_function(format!("cron {expr}"), |b| {
                    b.iter(|| cron::Schedule::from_str(black_box(&e)))
                });
            }
        }
        g.finish();
    }

    // Next fire time.
    {
        let mut g = c.benchmark_group("next");
        for (i, (expr, _)) in CASES.iter().enumerate() {
            let mine = Cron::parse(expr).unwrap();
            let zoned = starts[i].to_zoned(tz.clone());
            g.bench_function(format!("myrmex {expr}"), |b| {
                b.iter(|| mine.next_timestamp_after(black_box(starts[i]), &tz))
            });
            g.bench_function(format!("myrmex-zoned {expr}"), |b| {
                b.iter(|| mine.next_after(black_box(&zoned)))
            });
            let cr = croner_parse(expr);
            g.bench_function(format!("croner {expr}"), |b| {
                b.iter(|| cr.find_next_occurrence(black_box(&chrono_starts[i]), false))
            });
            if let Some(e) = cron_crate_form(expr) {
                let s = cron::Schedule::from_str(&e).unwrap();
                g.bench_function(format!("cron {expr}"), |b| {
                    b.iter(|| s.after(black_box(&chrono_starts[i])).next())
                });
            }
        }
        g.finish();
    }

    // Iteration.
    {
        let mut g = c.benchmark_group("iterate");
        for (i, (expr, _)) in CASES.iter().enumerate() {
            let mine = Cron::parse(expr).unwrap();
            g.bench_function(format!("myrmex {expr} x{ITER_N}"), |b| {
                b.iter(|| mine.timestamps_after(starts[i], &tz).take(ITER_N).count())
            });
            let cr = croner_parse(expr);
            g.bench_function(format!("croner {expr} x{ITER_N}"), |b| {
                b.iter(|| cr.iter_after(chrono_starts[i]).take(ITER_N).count())
            });
            if let Some(e) = cron_crate_form(expr) {
                let s = cron::Schedule::from_str(&e).unwrap();
                g.bench_function(format!("cron {expr} x{ITER_N}"), |b| {
                    b.iter(|| s.after(&chrono_starts[i]).take(ITER_N).count())
                });
            }
        }
        g.finish();
    }
    c.final_summary();

    // The summary: measured again here with a plain timer so the figures can
    // be compared in one table (criterion keeps its estimates to itself).
    let mut parse: Vec<(&str, Row)> =
        vec![("myrmex", vec![]), ("croner", vec![]), ("cron", vec![])];
    let mut next = parse.clone();
    let mut next_zoned: Vec<(&str, Row)> =
        vec![("myrmex", vec![]), ("croner", vec![]), ("cron", vec![])];
    let mut iter = parse.clone();
    for (i, (expr, _)) in CASES.iter().enumerate() {
        let mine = Cron::parse(expr).unwrap();
        let cr = croner_parse(expr);
        let cc = cron_crate_form(expr).map(|e| (cron::Schedule::from_str(&e).unwrap(), e));
        let zoned = starts[i].to_zoned(tz.clone());
        parse[0].1.push(Some(time_ns(|| {
            black_box(Cron::parse(black_box(expr)).ok());
        })));
        parse[1].1.push(Some(time_ns(|| {
            black_box(croner::Cron::from_str(black_box(expr)).ok());
        })));
        parse[2].1.push(cc.as_ref().map(|(_, e)| {
            time_ns(|| {
                black_box(cron::Schedule::from_str(black_box(e)).ok());
            })
        }));
        next[0].1.push(Some(time_ns(|| {
            black_box(mine.next_timestamp_after(black_box(starts[i]), &tz));
        })));
        next_zoned[0].1.push(Some(time_ns(|| {
            black_box(mine.next_after(black_box(&zoned)));
        })));
        let croner_next = time_ns(|| {
            black_box(
                cr.find_next_occurrence(black_box(&chrono_starts[i]), false)
                    .ok(),
            );
        });
        next[1].1.push(Some(croner_next));
        next_zoned[1].1.push(Some(croner_next));
        let cron_next = cc.as_ref().map(|(s, _)| {
            time_ns(|| {
                black_box(s.after(black_box(&chrono_starts[i])).next());
            })
        });
        next[2].1.push(cron_next);
        next_zoned[2].1.push(cron_next);
        let n = mine.timestamps_after(starts[i], &tz).take(ITER_N).count() as f64;
        iter[0].1.push(Some(
            time_ns(|| {
                black_box(mine.timestamps_after(starts[i], &tz).take(ITER_N).count());
            }) / n,
        ));
        iter[1].1.push(Some(
            time_ns(|| {
                black_box(cr.iter_after(chrono_starts[i]).take(ITER_N).count());
            }) / n,
        ));
        iter[2].1.push(cc.as_ref().map(|(s, _)| {
            time_ns(|| {
                black_box(s.after(&chrono_starts[i]).take(ITER_N).count());
            }) / n
        }));
    }
    println!();
    println!("per expression (ns): parse / next (Timestamp) / next (Zoned) / per occurrence");
    for (i, (expr, _)) in CASES.iter().enumerate() {
        let f = |r: &Row| r[i].map_or("n/a".to_owned(), |v| format!("{v:.0}"));
        println!(
            "  {expr:<16} myrmex {} / {} / {} / {:.1} | croner {} / {} / {} | cron {} / {} / {}",
            f(&parse[0].1),
            f(&next[0].1),
            f(&next_zoned[0].1),
            iter[0].1[i].unwrap(),
            f(&parse[1].1),
            f(&next[1].1),
            f(&iter[1].1),
            f(&parse[2].1),
            f(&next[2].1),
            f(&iter[2].1),
        );
    }
    println!();
    summary("parse", &parse, false);
    summary("next (Timestamp API)", &next, true);
    summary("next (Zoned API)", &next_zoned, true);
    summary("iteration per occurrence", &iter, false);
}
