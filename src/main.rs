//! The `synscope` command: the command line parsed, and run (src/cli).

use std::process::ExitCode;
use synscope::cli;

fn main() -> ExitCode {
    cli::run(cli::parse())
}
