//! The `synscope` command line: its definition ([`args`]), each command's
//! options from it, the one output step every report goes through, and the
//! exit codes ([`exit`]).
//!
//! `main` is `cli::run(cli::parse())`.

mod analyze;
pub mod args;
mod diagnose;
pub mod exit;
pub mod habits;
mod options;
mod output;
mod scan;
mod watch;

pub use args::{AnalyzeArgs, Cli, Command, DiagnoseArgs, Format, ReportArgs, ScanArgs};

use clap::CommandFactory;
use exit::{EXIT_OK, EXIT_RUNTIME};
use std::process::ExitCode;

/// The command line, nmap's habits for `scan` met first ([`habits`]):
/// the notes on what was taken without effect go to stderr; an option
/// that cannot be taken ends the process with its one-line answer (exit
/// 2), as clap's own errors do.
pub fn parse() -> Cli {
    use clap::Parser;
    match habits::translate(std::env::args_os().collect()) {
        Ok((args, notes)) => {
            for n in notes {
                eprintln!("synscope: note: {n}");
            }
            Cli::parse_from(args)
        }
        Err(e) => {
            eprintln!("synscope: {e}");
            std::process::exit(i32::from(exit::EXIT_INPUT));
        }
    }
}

/// Runs the command; the process's exit code ([`exit`]).
pub fn run(cli: Cli) -> ExitCode {
    ExitCode::from(match cli.command {
        Command::Analyze(args) => analyze::run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::Diagnose(args) => diagnose::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer
            // fails, and a reader that went away (`| head -c1`) is no
            // error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "synscope", &mut script);
            match output::to_stdout(|w| w.write_all(&script)) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("synscope: cannot write the completions: {e}");
                    EXIT_RUNTIME
                }
            }
        }
        Command::Man { command } => {
            let root = Cli::command();
            let cmd = match &command {
                None => root,
                Some(name) => match root.find_subcommand(name) {
                    // synscope-scan(1): the page's name says whose it is.
                    Some(sub) => {
                        let full = format!("synscope-{name}");
                        sub.clone()
                            .name(full.clone())
                            .bin_name(format!("synscope {name}"))
                            .display_name(full)
                    }
                    None => {
                        eprintln!(
                            "synscope: no command {name:?}: man pages are synscope (no argument), and one for analyze, scan, diagnose, completions and man"
                        );
                        return ExitCode::from(exit::EXIT_INPUT);
                    }
                },
            };
            let man = clap_mangen::Man::new(cmd);
            match output::to_stdout(|w| man.render(w)) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("synscope: cannot write the man page: {e}");
                    EXIT_RUNTIME
                }
            }
        }
    })
}
