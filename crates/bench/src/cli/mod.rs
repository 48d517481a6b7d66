//! The command line of `turnpike-bench`: the subcommands' arguments and bodies, and the
//! helpers they share (progress bars, durations, printing to a stdout that may close).

mod args;
pub(crate) mod control;
pub(crate) mod load;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Longest single run or search, in seconds.
const MAX_SECS: f64 = 3600.0;

fn progress(quiet: bool, len: u64, template: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

const RUN_TEMPLATE: &str = "{prefix} [{elapsed_precise}] {wide_bar} {msg}";

fn secs(v: f64, name: &str) -> Result<f64, String> {
    if v > 0.0 && v <= MAX_SECS {
        Ok(v)
    } else {
        Err(format!("{name} must be > 0 and ≤ {MAX_SECS}"))
    }
}

/// Writes to stdout; a closed stdout (a reader that went away) is not an error.
fn print_or_ignore(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Writes `v` as pretty JSON and a newline, as [`print_or_ignore`] does.
fn print_json(v: &impl serde::Serialize) {
    print_or_ignore(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

fn opt_secs(v: Option<f64>, name: &str) -> Result<Option<Duration>, String> {
    v.map(|v| secs(v, name).map(Duration::from_secs_f64))
        .transpose()
}
