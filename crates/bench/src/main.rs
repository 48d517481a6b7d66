//! `turnpike-bench`: load generator for TURN servers (see the crate README).
//!
//! The subcommands' arguments and bodies are in `cli/`: `args.rs` the arguments they
//! share, `load.rs` load, search and calibrate, `control.rs` storm, hold and flood.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::control::{FloodArgs, HoldArgs, StormArgs, cmd_flood, cmd_hold, cmd_storm};
use cli::load::{CalibrateArgs, LoadArgs, SearchArgs, cmd_calibrate, cmd_load, cmd_search};

#[derive(Parser, Debug)]
#[command(
    name = "turnpike-bench",
    version,
    about = "Load generator for TURN servers: offered load, lossless-rate search, allocation storms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fixed offered load through the relay; reports delivery, loss, latency, jitter, fairness.
    Load(LoadArgs),
    /// RFC 2544-style binary search for the highest rate with loss ≤ --max-loss.
    Search(SearchArgs),
    /// Authenticated allocation storm: Allocate (with 401) then Refresh lifetime 0.
    Storm(StormArgs),
    /// Floods a plain UDP reflector on loopback to measure the generator's own ceiling.
    Calibrate(CalibrateArgs),
    /// Create N allocations (permission and channel each), hold them, delete them; for
    /// measuring the server's memory per allocation.
    Hold(HoldArgs),
    /// Unauthenticated Binding/Allocate requests from many spoofed 127.0.0.0/8 sources
    /// (loopback servers only), counting the answers by class.
    Flood(FloodArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Load(a) => cmd_load(a),
        Command::Search(a) => cmd_search(a),
        Command::Storm(a) => cmd_storm(a),
        Command::Calibrate(a) => cmd_calibrate(a),
        Command::Hold(a) => cmd_hold(a),
        Command::Flood(a) => cmd_flood(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnpike-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
