//! The `synscope` command line: its definition ([`args`]), and running it.

pub mod args;

pub use args::{AnalyzeArgs, Cli, Command, DiagnoseArgs, Format, ReportArgs, ScanArgs};
