//! The `synscope` command line: its definition ([`args`]), each command's
//! options from it, and the exit codes ([`exit`]).

pub mod args;
pub mod exit;
mod options;

pub use args::{AnalyzeArgs, Cli, Command, DiagnoseArgs, Format, ReportArgs, ScanArgs};
