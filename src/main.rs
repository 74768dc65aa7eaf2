//! The `synscope` command: the command line parsed, and run (src/cli).

use clap::Parser;
use std::process::ExitCode;
use synscope::cli::{self, Cli};

fn main() -> ExitCode {
    cli::run(Cli::parse())
}
