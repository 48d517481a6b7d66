//! RFC 2544-style binary search for the highest offered load that passes: loss at or
//! under a threshold (default 0.1 %) and, optionally, p99 latency under a bound.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::load::{LoadReport, RunParams, Session};

/// Search bounds.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams {
    /// Trial template (its `rate` is replaced per trial).
    pub trial: RunParams,
    /// Lowest total offered load to try (packets/s, all clients).
    pub min_pps: f64,
    /// The first top of the range: the search starts here.
    pub max_pps: f64,
    /// While every trial passes, the top doubles, up to `max_pps` times this (1: the top
    /// is fixed), so a search whose first guess was too low still finds the maximum
    /// instead of stopping after one trial.
    pub max_growth: f64,
    /// Pass: loss percent at or under this.
    pub max_loss_pct: f64,
    /// Pass: p99 latency at or under this (µs), if set.
    pub max_p99_us: Option<f64>,
    /// Stop when (hi - lo) / hi is under this.
    pub resolution: f64,
    /// At most this many trials.
    pub max_trials: usize,
    /// Start no new trial after this long.
    pub max_time: Duration,
}

/// One trial.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// Total offered load asked for (packets/s).
    pub target_pps: f64,
    /// Whether it passed.
    pub pass: bool,
    /// The run's report.
    pub report: LoadReport,
}

/// The search's result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// Highest passing total offered load (packets/s) as actually offered by the
    /// generator, 0 if none passed.
    pub max_lossless_pps: f64,
    /// Whether even the top of the range passed (the real maximum may be higher).
    pub at_upper_bound: bool,
    /// Whether the best result is bounded by the load generator.
    pub generator_bound: bool,
    /// The loss threshold used (percent).
    pub max_loss_pct: f64,
    /// Every trial in order.
    pub trials: Vec<Trial>,
}

/// Runs the search. `on_trial` is called before each trial with its number and target
/// load, `tick` during each trial as in [`Session::run`].
pub fn search(
    session: &mut Session,
    p: &SearchParams,
    ceiling: Option<f64>,
    on_trial: &dyn Fn(usize, f64),
    tick: &dyn Fn(f64, u64),
) -> SearchReport {
    let clients = session.clients().max(1) as f64;
    let started = Instant::now();
    let mut lo = p.min_pps.max(1.0);
    let mut hi = p.max_pps.max(lo);
    let mut best: Option<Trial> = None;
    let mut trials = Vec::new();
    let mut at_upper_bound = false;
    let cap = hi * p.max_growth.max(1.0);
    let mut failed_once = false;
    let mut target = hi;
    while trials.len() < p.max_trials && started.elapsed() < p.max_time {
        on_trial(trials.len() + 1, target);
        let _ = session.maintain();
        let params = RunParams {
            rate: target / clients,
            ..p.trial
        };
        let mut report = session.run(&params, tick);
        report.apply_ceiling(ceiling);
        let pass = report.sent > 0
            && report.loss_pct <= p.max_loss_pct
            && p.max_p99_us.is_none_or(|m| report.latency.p99_us <= m);
        let trial = Trial {
            target_pps: target,
            pass,
            report,
        };
        trials.push(trial.clone());
        if pass {
            lo = target;
            best = Some(trial);
            if !failed_once {
                // Everything tried so far passed: the maximum lies higher.
                if target >= cap {
                    at_upper_bound = true;
                    break;
                }
                target = (target * 2.0).min(cap);
                hi = target;
                continue;
            }
        } else {
            hi = target;
            failed_once = true;
        }
        if (hi - lo) / hi < p.resolution {
            break;
        }
        target = if best.is_none() && trials.len() == 1 {
            // The top failed: try the bottom before bisecting.
            lo
        } else if best.is_none() && (target - lo).abs() < f64::EPSILON {
            break; // even the bottom fails
        } else {
            (lo + hi) / 2.0
        };
    }
    // Out of trials or time while still growing: the maximum is at least the best.
    at_upper_bound |= best.is_some() && !failed_once;
    // Report what was actually offered: a generator that fell short of the target
    // passed at the lower, offered load (and is flagged generator-bound).
    let (max, gen_bound) = best.as_ref().map_or((0.0, false), |t| {
        (
            t.report.offered_pps.min(t.target_pps),
            t.report.generator_bound,
        )
    });
    SearchReport {
        max_lossless_pps: max,
        at_upper_bound,
        generator_bound: gen_bound,
        max_loss_pct: p.max_loss_pct,
        trials,
    }
}

/// A rate for an axis tick: `0`, `950`, `20k`, `1.5M` (no `200000.0`).
fn tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        format!("{v:.0}")
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0")
        .map_or_else(|| s.clone(), str::to_owned)
}

/// Draws delivered packets/s and p50/p99 latency over offered load as an SVG file:
/// both rate axes on one scale (so "delivered = offered" is the diagonal and delivered
/// never appears above it), each trial marked pass or fail, the result marked, and the
/// workload (`workload`, e.g. "100 clients × 1200 B, channel, udp") in the title.
///
/// # Errors
///
/// The plotting library's error, as text.
pub fn plot(report: &SearchReport, path: &std::path::Path, workload: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut pts: Vec<&Trial> = report.trials.iter().collect();
    pts.sort_by(|a, b| a.report.offered_pps.total_cmp(&b.report.offered_pps));
    let top = pts
        .iter()
        .map(|t| {
            t.report
                .offered_pps
                .max(t.target_pps)
                .max(t.report.delivered_pps)
        })
        .fold(1.0, f64::max)
        * 1.05;
    let max_lat = pts
        .iter()
        .map(|t| t.report.latency.p99_us)
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let result = if report.max_lossless_pps > 0.0 {
        format!(
            "max with loss ≤ {} %: {}{} pkt/s",
            report.max_loss_pct,
            if report.at_upper_bound { "≥ " } else { "" },
            tick_label(report.max_lossless_pps)
        )
    } else {
        "no trial passed".to_owned()
    };
    let root = root
        .titled(
            &format!("turnpike-bench search: {workload} — {result}"),
            ("sans-serif", 18),
        )
        .map_err(|x| e(&x))?;
    let (upper, lower) = root.split_vertically(380);
    let mut c1 = ChartBuilder::on(&upper)
        .caption("Delivered vs offered load", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..top, 0.0..top)
        .map_err(|x| e(&x))?;
    c1.configure_mesh()
        .x_desc("offered packets/s")
        .y_desc("delivered packets/s")
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .draw()
        .map_err(|x| e(&x))?;
    c1.draw_series(LineSeries::new([(0.0, 0.0), (top, top)], BLACK.mix(0.3)))
        .map_err(|x| e(&x))?
        .label("delivered = offered (no loss)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
    c1.draw_series(LineSeries::new(
        pts.iter()
            .map(|t| (t.report.offered_pps, t.report.delivered_pps)),
        &BLUE,
    ))
    .map_err(|x| e(&x))?
    .label("delivered")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let marks = |pass: bool| {
        pts.iter()
            .filter(move |t| t.pass == pass)
            .map(|t| (t.report.offered_pps, t.report.delivered_pps))
    };
    c1.draw_series(marks(true).map(|p| Circle::new(p, 4, GREEN.filled())))
        .map_err(|x| e(&x))?
        .label("trial passed")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, GREEN.filled()));
    c1.draw_series(marks(false).map(|p| Cross::new(p, 5, RED.stroke_width(2))))
        .map_err(|x| e(&x))?
        .label("trial failed")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, RED.stroke_width(2)));
    if report.max_lossless_pps > 0.0 {
        let m = report.max_lossless_pps;
        c1.draw_series(DashedLineSeries::new(
            [(m, 0.0), (m, top)],
            6,
            4,
            GREEN.stroke_width(2),
        ))
        .map_err(|x| e(&x))?
        .label(result)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    }
    c1.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    let mut c2 = ChartBuilder::on(&lower)
        .caption("One-way latency vs offered load", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..top, 0.0..max_lat)
        .map_err(|x| e(&x))?;
    c2.configure_mesh()
        .x_desc("offered packets/s")
        .y_desc("latency (µs)")
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .draw()
        .map_err(|x| e(&x))?;
    for (label, color, pick) in [
        (
            "p50",
            GREEN,
            (|t: &Trial| t.report.latency.p50_us) as fn(&Trial) -> f64,
        ),
        ("p99", RED, |t: &Trial| t.report.latency.p99_us),
    ] {
        c2.draw_series(LineSeries::new(
            pts.iter().map(|t| (t.report.offered_pps, pick(t))),
            &color,
        ))
        .map_err(|x| e(&x))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c2.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tick_label;

    #[test]
    fn ticks_read_as_rates() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(950.0), "950");
        assert_eq!(tick_label(200_000.0), "200k");
        assert_eq!(tick_label(1_500_000.0), "1.5M");
        assert_eq!(tick_label(62_500.0), "62.5k");
    }
}
