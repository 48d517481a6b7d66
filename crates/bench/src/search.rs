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
    /// Highest total offered load to try.
    pub max_pps: f64,
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
            if trials.len() == 1 {
                at_upper_bound = true;
                best = Some(trial);
                break;
            }
            lo = target;
            best = Some(trial);
        } else {
            hi = target;
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

/// Draws delivered packets/s and p50/p99 latency over offered load as an SVG file.
pub fn plot(report: &SearchReport, path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    let mut pts: Vec<&Trial> = report.trials.iter().collect();
    pts.sort_by(|a, b| a.report.offered_pps.total_cmp(&b.report.offered_pps));
    let max_x = pts
        .iter()
        .map(|t| t.report.offered_pps.max(t.target_pps))
        .fold(1.0, f64::max)
        * 1.05;
    let max_y = pts
        .iter()
        .map(|t| t.report.delivered_pps)
        .fold(1.0, f64::max)
        * 1.1;
    let max_lat = pts
        .iter()
        .map(|t| t.report.latency.p99_us)
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(350);
    let mut c1 = ChartBuilder::on(&top)
        .caption("Delivered vs offered load", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(|e| e.to_string())?;
    c1.configure_mesh()
        .x_desc("offered packets/s")
        .y_desc("delivered packets/s")
        .draw()
        .map_err(|e| e.to_string())?;
    c1.draw_series(LineSeries::new(
        pts.iter()
            .map(|t| (t.report.offered_pps, t.report.delivered_pps)),
        &BLUE,
    ))
    .map_err(|e| e.to_string())?
    .label("delivered")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c1.draw_series(LineSeries::new(
        vec![(0.0, 0.0), (max_x, max_x)],
        &BLACK.mix(0.3),
    ))
    .map_err(|e| e.to_string())?
    .label("offered")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
    c1.configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    let mut c2 = ChartBuilder::on(&bottom)
        .caption("One-way latency vs offered load", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x, 0.0..max_lat)
        .map_err(|e| e.to_string())?;
    c2.configure_mesh()
        .x_desc("offered packets/s")
        .y_desc("latency (µs)")
        .draw()
        .map_err(|e| e.to_string())?;
    c2.draw_series(LineSeries::new(
        pts.iter()
            .map(|t| (t.report.offered_pps, t.report.latency.p50_us)),
        &GREEN,
    ))
    .map_err(|e| e.to_string())?
    .label("p50")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    c2.draw_series(LineSeries::new(
        pts.iter()
            .map(|t| (t.report.offered_pps, t.report.latency.p99_us)),
        &RED,
    ))
    .map_err(|e| e.to_string())?
    .label("p99")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c2.configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
