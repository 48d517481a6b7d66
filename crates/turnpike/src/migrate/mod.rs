//! `turnpike migrate-coturn`: reads coturn's `turnserver.conf` and writes the equivalent
//! `turnserver.toml`, listing on stderr, one line each, what it could not carry over and
//! why (`turnserver.conf:LINE: KEY: reason`).
//!
//! [`parse`] reads the file with coturn's quirks, [`map`] and [`map_more`] map each option
//! (docs/MIGRATING.md is the table), [`cidr`] turns `A-B` peer ranges into CIDR blocks,
//! [`emit`] writes the TOML with a comment naming the coturn line of every value. The
//! result is then loaded as `turnpike -c OUT check-config` would; if it does not load
//! here (a certificate path that exists only on the coturn host), that is said too.
//!
//! Exit codes: 0 written (even with lines not carried: they are listed), 1 the output
//! cannot be written, 2 unreadable input or bad usage.

mod cidr;
mod emit;
mod map;
mod map_more;
mod parse;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `turnpike migrate-coturn`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    /// coturn's configuration file (e.g. /etc/turnserver.conf).
    input: PathBuf,
    /// Where to write the turnpike configuration; stdout if not given.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// The TOML text and the notes for a coturn file's text; `name` is the file's name in
/// comments and notes, `dir` where its relative paths start.
pub(crate) fn migrate(text: &str, name: &str, dir: &Path) -> (String, Vec<String>) {
    let entries = parse::entries(text);
    let done = map::Migration::new(name, dir, &entries).run();
    let notes = done
        .notes
        .iter()
        .map(|n| match n.line {
            Some(line) => format!("{name}:{line}: {}: {}", n.key, n.reason),
            None => format!("{name}: {}: {}", n.key, n.reason),
        })
        .collect();
    (done.doc.render(name), notes)
}

/// Runs the subcommand.
pub(crate) fn run(args: &MigrateArgs) -> ExitCode {
    let text = match std::fs::read(&args.input) {
        // coturn reads bytes; a stray non-UTF-8 byte (a comment in Latin-1) is not fatal.
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("turnpike: cannot read {}: {e}", args.input.display());
            return ExitCode::from(2);
        }
    };
    let name = args.input.file_name().map_or_else(
        || args.input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let dir = args
        .input
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let (toml, notes) = migrate(&text, &name, &dir);
    let mut stderr = std::io::stderr().lock();
    for n in &notes {
        let _ = writeln!(stderr, "{n}");
    }
    if let Err(e) = crate::config::parse(&toml, "the migrated configuration") {
        let _ = writeln!(
            stderr,
            "{name}: warning: the result does not load on this host as it is: {e}"
        );
    }
    let written = match &args.output {
        Some(path) => std::fs::write(path, &toml),
        None => std::io::stdout().lock().write_all(toml.as_bytes()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let to = args
                .output
                .as_ref()
                .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
            let _ = writeln!(stderr, "turnpike: cannot write {to}: {e}");
            ExitCode::from(1)
        }
    }
}
