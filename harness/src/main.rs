//! `brownout`: parses the command line ([`harness::cli`]), runs the command and exits with its
//! exit code (`harness::error::Exit`: 0 pass, 1 fail, 2 bad input, 3 environment, 130 interrupted).

use clap::Parser;
use harness::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BROWNOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let exit = Cli::parse().run().unwrap_or_else(|e| {
        eprintln!("brownout: error: {e}");
        e.exit()
    });
    ExitCode::from(exit)
}
